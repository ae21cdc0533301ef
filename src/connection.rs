//! One client connection: reads the byte stream into lines (through
//! [`LineSplitter`], bounded length), hands each request to the service as its own
//! task so many are in flight at once, and writes replies back in completion order.
//! Bounded per connection: at most `max_in_flight` requests are being handled or
//! waiting to be written, and together they hold no more memory than the connection's
//! share of the [`Budget`]; past either the connection stops reading, so a client that
//! never reads cannot grow our memory. Error replies to bad lines count too.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::budget::{self, Budget, ConnBudget, Reservation};
use crate::commands;
use crate::lines::{Event, LineSplitter};
use crate::model::now_ms;
use crate::protocol::{self, BadLine, ProtocolErrorKind};
use crate::service::Service;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_line_bytes: usize,
    pub max_in_flight: usize,
    /// This connection's share of the request memory budget.
    pub max_memory: usize,
}

/// What a reply holds until it is written: its in-flight slot and its memory.
struct Held {
    _slot: OwnedSemaphorePermit,
    _memory: Reservation,
}

type Outgoing = (Vec<u8>, Held);

/// The write buffer: small replies written together go out in one flush; larger
/// ones bypass it.
const WRITE_BUFFER: usize = 16 * 1024;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClosed,
    ReadError,
    WriteError,
    LineTooLong,
    /// A line that was not JSON, from a sender that could not be recognised: there
    /// is nobody to answer and no telling what the stream holds next.
    BadLine,
    Shutdown,
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::ReadError => "read_error",
            CloseReason::WriteError => "write_error",
            CloseReason::LineTooLong => "line_too_long",
            CloseReason::BadLine => "bad_line",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Serves one connection until the client closes it, it breaks, or `shutdown` fires
/// (then complete lines already received are still answered, in-flight requests
/// finish and replies are flushed before the socket closes).
pub async fn serve(
    stream: TcpStream,
    service: Arc<Service>,
    limits: ConnLimits,
    budget: &Budget,
    shutdown: CancellationToken,
) -> CloseReason {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let broken = CancellationToken::new();
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let pending = Pending {
        permits: in_flight.clone(),
        max: limits.max_in_flight,
    };
    let writer_task = tokio::spawn(write_loop(writer, rx, pending, broken.clone()));
    let mut conn = Reader {
        service,
        tx,
        in_flight,
        memory: budget.connection(limits.max_memory),
    };
    let mut lines = LineSplitter::new(limits.max_line_bytes);

    let reason = 'conn: loop {
        while let Some(event) = lines.next_event() {
            if let Some(reason) = conn.event(event).await {
                break 'conn reason;
            }
        }
        tokio::select! {
            biased;
            _ = broken.cancelled() => break CloseReason::WriteError,
            _ = shutdown.cancelled() => break CloseReason::Shutdown,
            read = reader.read_buf(lines.read_buf()) => match read {
                Ok(0) => break CloseReason::ClientClosed,
                Ok(_) => {}
                Err(_) => break CloseReason::ReadError,
            },
        }
    };
    // Dropping our sender lets the writer finish once every in-flight task has sent
    // its reply (each task holds a clone).
    drop(conn);
    let _ = writer_task.await;
    reason
}

struct Reader {
    service: Arc<Service>,
    tx: mpsc::UnboundedSender<Outgoing>,
    in_flight: Arc<Semaphore>,
    memory: ConnBudget,
}

impl Reader {
    /// Handles one event of the byte stream; returns a reason when the connection
    /// must close.
    async fn event(&mut self, event: Event) -> Option<CloseReason> {
        match event {
            Event::Line(line) => self.line(&line).await,
            Event::TooLong(prefix) => {
                self.too_long(&prefix).await;
                None
            }
            Event::Endless(prefix) => {
                self.too_long(&prefix).await;
                Some(CloseReason::LineTooLong)
            }
        }
    }

    async fn too_long(&self, prefix: &[u8]) {
        let bad = BadLine {
            kind: ProtocolErrorKind::LineTooLong,
            echo: protocol::identify(prefix),
            cmd: protocol::identify_cmd(prefix),
        };
        if let Some(reply) = self.service.bad_line(bad, now_ms()) {
            self.send_now(reply).await;
        }
    }

    /// Queues a reply made by the reader itself, within the same bounds as the
    /// others: a client sending bad lines and never reading must stall too.
    async fn send_now(&self, reply: Vec<u8>) {
        let Ok(slot) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(memory) = self.memory.reserve(reply.len()).await else {
            return;
        };
        let _ = self.tx.send((
            reply,
            Held {
                _slot: slot,
                _memory: memory,
            },
        ));
    }

    async fn line(&mut self, raw: &[u8]) -> Option<CloseReason> {
        let line = trim(raw);
        if line.is_empty() {
            return None;
        }
        let recv = now_ms();
        let req = match protocol::parse_line(line) {
            Ok(req) => req,
            Err(bad) => {
                let unparsable = bad.kind != ProtocolErrorKind::BadEnvelope;
                match self.service.bad_line(bad, recv) {
                    Some(reply) => self.send_now(reply).await,
                    None if unparsable => return Some(CloseReason::BadLine),
                    None => {}
                }
                return None;
            }
        };
        // Waiting here is the backpressure: no slot or no memory, no more reading.
        let Ok(slot) = self.in_flight.clone().acquire_owned().await else {
            return None;
        };
        let limits = &self.service.ctx.limits;
        let cost = budget::request_cost(
            line.len(),
            commands::reply_sessions(&req.act, limits),
            limits,
        );
        let (req, mut memory) = match self.memory.try_reserve(cost) {
            Some(memory) => (req, memory),
            None => {
                // Do not hold the parsed request while waiting: it may be many times
                // the line. Parse the line again once there is room.
                drop(req);
                let memory = self.memory.reserve(cost).await?;
                match protocol::parse_line(line) {
                    Ok(req) => (req, memory),
                    Err(_) => return None,
                }
            }
        };
        let service = self.service.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(reply) = service.handle(req, recv).await {
                memory.shrink_to(reply.len());
                let held = Held {
                    _slot: slot,
                    _memory: memory,
                };
                let _ = tx.send((reply, held));
            }
        });
        None
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// How many requests of the connection are still being handled (each holds a permit
/// until its reply is written).
struct Pending {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Pending {
    fn any(&self) -> bool {
        self.permits.available_permits() < self.max
    }
}

async fn write_loop(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    pending: Pending,
    broken: CancellationToken,
) {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, writer);
    while let Some((bytes, held)) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            broken.cancel();
            return;
        }
        drop((bytes, held));
        // Batch whatever else is ready into the same flush. The first reply wakes
        // this task before the other requests of the same read have run (tokio runs
        // a woken task next), so when more are in progress, yield once to let them
        // finish: one write for many replies instead of a syscall each.
        for round in 0..2 {
            if round == 1 {
                if !pending.any() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            while let Ok((bytes, held)) = rx.try_recv() {
                if w.write_all(&bytes).await.is_err() {
                    broken.cancel();
                    return;
                }
                drop((bytes, held));
            }
        }
        if w.flush().await.is_err() {
            broken.cancel();
            return;
        }
    }
    let _ = w.shutdown().await;
}
