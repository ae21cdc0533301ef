//! One client connection: splits the byte stream into lines (bounded length),
//! hands each request to the service as its own task so many are in flight at once,
//! and writes replies back in completion order. Bounded per connection: at most
//! `max_in_flight` requests are being handled or waiting to be written; past that the
//! connection stops reading, so a client that never reads cannot grow our memory.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::model::now_ms;
use crate::protocol::{self, BadLine, ProtocolErrorKind};
use crate::service::Service;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_line_bytes: usize,
    pub max_in_flight: usize,
}

/// How much of an over-long line is kept to recognise its sender.
const PREFIX_KEEP: usize = 4096;

/// An over-long line is skipped up to its newline, but a "line" that goes on past
/// this many multiples of the limit is abuse: the connection is closed.
const DISCARD_FACTOR: usize = 8;

type Outgoing = (Vec<u8>, Option<OwnedSemaphorePermit>);

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
        limits,
        tx,
        in_flight,
        buf: BytesMut::with_capacity(8 * 1024),
        scanned: 0,
        discarding: None,
    };

    let reason = loop {
        if let Some(reason) = conn.drain_lines().await {
            break reason;
        }
        conn.buf.reserve(8 * 1024);
        tokio::select! {
            biased;
            _ = broken.cancelled() => break CloseReason::WriteError,
            _ = shutdown.cancelled() => break CloseReason::Shutdown,
            read = reader.read_buf(&mut conn.buf) => match read {
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

struct Discard {
    prefix: Vec<u8>,
    seen: usize,
}

struct Reader {
    service: Arc<Service>,
    limits: ConnLimits,
    tx: mpsc::UnboundedSender<Outgoing>,
    in_flight: Arc<Semaphore>,
    buf: BytesMut,
    /// How far `buf` has been searched for a newline already.
    scanned: usize,
    /// Set while skipping the rest of an over-long line.
    discarding: Option<Discard>,
}

impl Reader {
    /// Handles every complete line in the buffer; returns a reason when the
    /// connection must close.
    async fn drain_lines(&mut self) -> Option<CloseReason> {
        while let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let end = self.scanned + pos;
            let line = self.buf.split_to(end + 1);
            self.scanned = 0;
            if let Some(d) = self.discarding.take() {
                self.too_long(&d.prefix);
                continue;
            }
            let body = &line[..end];
            if body.len() > self.limits.max_line_bytes {
                let keep = body.len().min(PREFIX_KEEP);
                self.too_long(&body[..keep]);
                continue;
            }
            if let Some(reason) = self.line(body).await {
                return Some(reason);
            }
        }
        self.scanned = self.buf.len();
        if let Some(d) = &mut self.discarding {
            d.seen += self.buf.len();
            self.buf.clear();
            self.scanned = 0;
            if d.seen > self.limits.max_line_bytes.saturating_mul(DISCARD_FACTOR) {
                let prefix = std::mem::take(&mut d.prefix);
                self.too_long(&prefix);
                return Some(CloseReason::LineTooLong);
            }
        } else if self.buf.len() > self.limits.max_line_bytes {
            let keep = self.buf.len().min(PREFIX_KEEP);
            self.discarding = Some(Discard {
                prefix: self.buf[..keep].to_vec(),
                seen: self.buf.len(),
            });
            self.buf.clear();
            self.scanned = 0;
        }
        None
    }

    fn too_long(&self, prefix: &[u8]) {
        let bad = BadLine {
            kind: ProtocolErrorKind::LineTooLong,
            echo: protocol::identify(prefix),
        };
        if let Some(reply) = self.service.bad_line(bad, now_ms()) {
            let _ = self.tx.send((reply, None));
        }
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
                    Some(reply) => {
                        let _ = self.tx.send((reply, None));
                    }
                    None if unparsable => return Some(CloseReason::BadLine),
                    None => {}
                }
                return None;
            }
        };
        // Waiting here is the backpressure: no permit, no more reading.
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return None;
        };
        let service = self.service.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(reply) = service.handle(req, recv).await {
                let _ = tx.send((reply, Some(permit)));
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
    let mut w = BufWriter::with_capacity(64 * 1024, writer);
    while let Some((bytes, permit)) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            broken.cancel();
            return;
        }
        drop(permit);
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
            while let Ok((bytes, permit)) = rx.try_recv() {
                if w.write_all(&bytes).await.is_err() {
                    broken.cancel();
                    return;
                }
                drop(permit);
            }
        }
        if w.flush().await.is_err() {
            broken.cancel();
            return;
        }
    }
    let _ = w.shutdown().await;
}
