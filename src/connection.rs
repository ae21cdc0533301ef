//! One client connection, served by one task: reads the byte stream into lines
//! (through [`LineSplitter`], bounded length), runs each request as a future of this
//! same task so many are in flight at once, and writes replies back in completion
//! order, coalescing the replies that are ready together into one write.
//!
//! One task rather than a task per request and a writer task: a request then costs
//! no spawn, no channel and no extra task wake-ups, which was most of the service's
//! own CPU per request (see docs/benchmarks.md).
//!
//! Bounded per connection: at most `max_in_flight` requests are being handled or
//! waiting to be written, and together they hold no more memory than the connection's
//! share of the [`Budget`]; past either the connection stops reading, so a client that
//! never reads cannot grow our memory. Error replies to bad lines count too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::WriteHalf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::budget::{self, Budget, ConnBudget, Reservation};
use crate::commands;
use crate::lines::{Event, LineSplitter};
use crate::model::now_ms;
use crate::protocol::{self, BadLine, ProtocolErrorKind, Request};
use crate::service::Service;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_line_bytes: usize,
    pub max_in_flight: usize,
    /// This connection's share of the request memory budget.
    pub max_memory: usize,
}

/// A reply and the memory it holds until it is written.
type Reply = (Vec<u8>, Reservation);

/// Replies up to this size written together are copied into one buffer and sent in
/// one write; a larger one is written on its own, without a copy.
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

/// Work read from the stream, waiting for its in-flight slot and its memory.
enum Work {
    /// A request. `req` is dropped while waiting for memory (it may be many times
    /// the line) and parsed again from `line` once there is room.
    Request {
        req: Option<Request>,
        line: BytesMut,
        cost: usize,
        recv: i64,
    },
    /// A reply the connection makes itself, to a bad line.
    Reply(Vec<u8>),
}

impl Work {
    fn cost(&self) -> usize {
        match self {
            Work::Request { cost, .. } => *cost,
            Work::Reply(reply) => reply.len(),
        }
    }
}

/// Serves one connection until the client closes it, it breaks, or `shutdown` fires
/// (then complete lines already received are still answered, in-flight requests
/// finish and replies are flushed before the socket closes).
pub async fn serve(
    mut stream: TcpStream,
    service: Arc<Service>,
    limits: ConnLimits,
    budget: &Budget,
    shutdown: CancellationToken,
) -> CloseReason {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let service: &Service = &service;
    let memory = budget.connection(limits.max_memory);
    let mut lines = LineSplitter::new(limits.max_line_bytes);
    let mut running = FuturesUnordered::new();
    let mut outbox: Vec<Reply> = Vec::new();
    // The next piece of work, when it waits for a slot or for memory.
    let mut next: Option<Work> = None;
    // Set while waiting for memory for `next`. Kept across iterations of the loop
    // so the wait keeps its place in the budget's queue.
    let mut waiting = None;
    // Set once no more is read; the connection then ends when nothing is left to do.
    let mut ending: Option<CloseReason> = None;
    // False after an Endless line or an unanswerable bad line: the stream holds
    // nothing usable any more, even complete lines already received.
    let mut take_events = true;
    let mut broken = false;

    loop {
        // Admit what has been received, while there is room.
        while !broken && waiting.is_none() {
            if next.is_none() && take_events {
                match lines.next_event() {
                    Some(event) => {
                        let (work, close) = prepare(service, event);
                        next = work;
                        if let Some(reason) = close {
                            take_events = false;
                            ending.get_or_insert(reason);
                        }
                        if next.is_none() {
                            continue;
                        }
                    }
                    None => break,
                }
            }
            let Some(work) = next.take() else { break };
            if running.len() + outbox.len() >= limits.max_in_flight {
                next = Some(work);
                break;
            }
            match memory.try_reserve(work.cost()) {
                Some(reserved) => place(admit(service, work, reserved), &mut running, &mut outbox),
                None => {
                    let cost = work.cost();
                    next = Some(match work {
                        Work::Request { line, recv, .. } => Work::Request {
                            req: None,
                            line,
                            cost,
                            recv,
                        },
                        other => other,
                    });
                    waiting = Some(Box::pin(wait_for(&memory, cost)));
                }
            }
        }

        // Write what is ready. While other requests of this connection are running,
        // give them one turn first: those whose answer has arrived finish and go out
        // in the same write instead of a write each.
        collect(&mut running, &mut outbox);
        if !outbox.is_empty() && !broken {
            if !running.is_empty() {
                tokio::task::yield_now().await;
                collect(&mut running, &mut outbox);
            }
            if write_all(&mut writer, &mut outbox).await.is_err() {
                broken = true;
                // A client that closed its side first is still `client_closed`.
                ending.get_or_insert(CloseReason::WriteError);
            }
        }
        if broken {
            // Nothing more is read or written; requests already running are let
            // finish (as a client's request that reached the store would anyway).
            outbox.clear();
            next = None;
            waiting = None;
        }

        let idle = running.is_empty() && outbox.is_empty() && next.is_none();
        // Idle means every event received was taken too: the loop above stops
        // early only with `next` set.
        if ending.is_some() && idle {
            break;
        }

        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if ending.is_none() => {
                ending = Some(CloseReason::Shutdown);
            }
            done = running.next(), if !running.is_empty() => {
                if let Some(Some(reply)) = done {
                    outbox.push(reply);
                }
            }
            reserved = poll_waiting(&mut waiting), if waiting.is_some() => {
                waiting = None;
                // None only if the budget were closed, which it never is.
                if let (Some(reserved), Some(work)) = (reserved, next.take()) {
                    place(admit(service, work, reserved), &mut running, &mut outbox);
                }
            }
            read = reader.read_buf(lines.read_buf()), if ending.is_none() && next.is_none() => {
                match read {
                    Ok(0) => ending = Some(CloseReason::ClientClosed),
                    Ok(_) => {}
                    Err(_) => ending = Some(CloseReason::ReadError),
                }
            }
            else => break,
        }
    }
    if !broken {
        let _ = writer.shutdown().await;
    }
    ending.unwrap_or(CloseReason::ClientClosed)
}

/// Turns one event of the byte stream into work, and says when the connection must
/// close after it.
fn prepare(service: &Service, event: Event) -> (Option<Work>, Option<CloseReason>) {
    match event {
        Event::Line(line) => prepare_line(service, line),
        Event::TooLong(prefix) => (too_long(service, &prefix).map(Work::Reply), None),
        Event::Endless(prefix) => (
            too_long(service, &prefix).map(Work::Reply),
            Some(CloseReason::LineTooLong),
        ),
    }
}

fn too_long(service: &Service, prefix: &[u8]) -> Option<Vec<u8>> {
    let bad = BadLine {
        kind: ProtocolErrorKind::LineTooLong,
        echo: protocol::identify(prefix),
        cmd: protocol::identify_cmd(prefix),
    };
    service.bad_line(bad, now_ms())
}

fn prepare_line(service: &Service, line: BytesMut) -> (Option<Work>, Option<CloseReason>) {
    let text = trim(&line);
    if text.is_empty() {
        return (None, None);
    }
    let recv = now_ms();
    match protocol::parse_line(text) {
        Ok(req) => {
            let limits = &service.ctx.limits;
            let cost = budget::request_cost(
                text.len(),
                commands::reply_sessions(&req.act, limits),
                limits,
            );
            let work = Work::Request {
                req: Some(req),
                line,
                cost,
                recv,
            };
            (Some(work), None)
        }
        Err(bad) => {
            let unparsable = bad.kind != ProtocolErrorKind::BadEnvelope;
            match service.bad_line(bad, recv) {
                Some(reply) => (Some(Work::Reply(reply)), None),
                None if unparsable => (None, Some(CloseReason::BadLine)),
                None => (None, None),
            }
        }
    }
}

/// What admitting a piece of work gives.
enum Admitted<F> {
    /// A request to run.
    Run(F),
    /// A reply ready to be written.
    Reply(Reply),
    Nothing,
}

/// Starts `work`, its slot and memory granted.
fn admit(
    service: &Service,
    work: Work,
    reserved: Reservation,
) -> Admitted<impl Future<Output = Option<Reply>> + '_> {
    match work {
        Work::Reply(reply) => Admitted::Reply((reply, reserved)),
        Work::Request {
            req, line, recv, ..
        } => {
            let req = match req {
                Some(req) => req,
                // Parsed before, so this cannot fail; dropped if it somehow does.
                None => match protocol::parse_line(trim(&line)) {
                    Ok(req) => req,
                    Err(_) => return Admitted::Nothing,
                },
            };
            drop(line);
            Admitted::Run(run(service, req, recv, reserved))
        }
    }
}

/// Puts admitted work where it goes: a request among the running ones, a ready
/// reply in the outbox.
fn place<F>(admitted: Admitted<F>, running: &mut FuturesUnordered<F>, outbox: &mut Vec<Reply>) {
    match admitted {
        Admitted::Run(f) => running.push(f),
        Admitted::Reply(reply) => outbox.push(reply),
        Admitted::Nothing => {}
    }
}

/// One request: its reply (none when the caller does not wait for one), holding only
/// the memory the reply needs.
async fn run(
    service: &Service,
    req: Request,
    recv: i64,
    mut reserved: Reservation,
) -> Option<Reply> {
    let reply = service.handle(req, recv).await?;
    reserved.shrink_to(reply.len());
    Some((reply, reserved))
}

/// Moves the replies of requests that have finished to the outbox, without waiting.
fn collect<F>(running: &mut FuturesUnordered<F>, outbox: &mut Vec<Reply>)
where
    F: Future<Output = Option<Reply>>,
{
    while let Some(Some(done)) = running.next().now_or_never() {
        if let Some(reply) = done {
            outbox.push(reply);
        }
    }
}

/// Waits for memory in the connection's budget.
async fn wait_for(memory: &ConnBudget, bytes: usize) -> Option<Reservation> {
    memory.reserve(bytes).await
}

/// Polls the memory wait, if any (the select branch is disabled when there is none).
async fn poll_waiting<F>(waiting: &mut Option<Pin<Box<F>>>) -> Option<Reservation>
where
    F: Future<Output = Option<Reservation>>,
{
    std::future::poll_fn(|cx| match waiting.as_mut() {
        Some(f) => f.as_mut().poll(cx),
        None => Poll::Pending,
    })
    .await
}

/// Writes the outbox (and empties it): small replies copied together into one
/// write, larger ones on their own. Their memory is given back once written.
async fn write_all(writer: &mut WriteHalf<'_>, outbox: &mut Vec<Reply>) -> std::io::Result<()> {
    if let [(reply, _)] = outbox.as_slice() {
        writer.write_all(reply).await?;
        outbox.clear();
        return Ok(());
    }
    let total: usize = outbox.iter().map(|(r, _)| r.len()).sum();
    let mut buf = Vec::with_capacity(total.min(WRITE_BUFFER));
    for (reply, _) in outbox.iter() {
        if buf.len() + reply.len() > WRITE_BUFFER && !buf.is_empty() {
            writer.write_all(&buf).await?;
            buf.clear();
        }
        if reply.len() > WRITE_BUFFER {
            writer.write_all(reply).await?;
        } else {
            buf.extend_from_slice(reply);
        }
    }
    if !buf.is_empty() {
        writer.write_all(&buf).await?;
    }
    outbox.clear();
    Ok(())
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
