//! The store's own connection to one Redis node, over plain TCP, TLS or a Unix socket:
//! owns the socket, the queue of requests waiting for replies, and reconnecting. Every
//! topology sends through it: one server (`standalone.rs`), the primary Sentinel names
//! (`sentinel.rs`) and each primary of a cluster (`cluster.rs`).
//!
//! Why not the redis crate's multiplexed connection, which does the same job: under
//! load its driver task is woken by each request and writes it alone (a `writev` and
//! a wake-up of Redis per command, 0.7 per request measured at 64 clients), and its
//! general-purpose parser took a sixth of the service's CPU. Here one task per
//! connection ([`Driver`]) gathers every request queued while the other tasks of its
//! worker run (it yields once before writing), writes them in one `write`, and reads
//! the replies with the small RESP2 reader of `resp.rs`. See `docs/benchmarks.md`.
//!
//! Semantics the rest of the store relies on (`conn.rs`, `cluster.rs`):
//! - connecting is lazy: nothing happens until the first request, and after a drop
//!   the next request connects again (resolving the host name again, so a name a
//!   managed service moves on failover is followed);
//! - a connection that breaks fails every request waiting on it with an I/O error
//!   (`is_connection_dropped`), a refused connect with `ConnectionRefused`; the caller
//!   decides what may be sent again;
//! - a caller that stops waiting (its deadline passed) does not disturb the others:
//!   its reply is still read, in order, and dropped;
//! - error replies come back as `Value::ServerError`, like the redis crate does;
//! - a request may carry leading commands whose replies are not wanted (`ASKING`
//!   before a redirected command): they are read and dropped.
//!
//! Memory: requests reach a connection only through the service's own admission
//! limits (in-flight requests, request memory), so its queue is bounded by them; the
//! read buffer grows to the largest reply and shrinks back afterwards.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use super::resp;

/// Read buffer a connection starts with and gives back to after a large reply.
const READ_BUF: usize = 16 * 1024;
/// Always this much free space for the next read.
const READ_MIN_FREE: usize = 4 * 1024;
/// Write buffer capacity kept between batches; a larger one is given back.
const WRITE_BUF_KEEP: usize = 64 * 1024;

/// How a node is reached.
#[derive(Clone)]
pub(crate) enum Addr {
    Tcp {
        host: String,
        port: u16,
    },
    /// TLS over TCP; the certificate is verified against `host`.
    Tls {
        host: String,
        port: u16,
        config: Arc<ClientConfig>,
    },
    Unix(PathBuf),
}

/// Where to connect and how to log in.
#[derive(Clone)]
pub(crate) struct Target {
    pub addr: Addr,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    /// Longest a connect (and the login on it) may take.
    pub connect_timeout: Duration,
    /// Whether to connect again after the connection broke (standalone). Without
    /// (Sentinel), a broken connection fails every later request as dropped: the
    /// primary may have moved, and only a new discovery may pick the address again.
    pub reconnect: bool,
}

/// A handle to one connection; cheap to clone. The connection's task ends when the
/// last handle is dropped and nothing is waiting for a reply.
#[derive(Clone)]
pub(crate) struct PipeConn {
    jobs: mpsc::UnboundedSender<Job>,
    /// Which socket of its task's group.
    socket: usize,
    db: i64,
}

/// Replies to one request: a single command, or the `count` replies after the first
/// `skip` of a pipeline.
enum Answer {
    One(Value),
    Many(Vec<Value>),
}

struct Job {
    socket: usize,
    packed: Vec<u8>,
    skip: usize,
    count: usize,
    reply: oneshot::Sender<RedisResult<Answer>>,
}

impl PipeConn {
    /// Starts the connection's task (it connects on the first request). Must be
    /// called inside a Tokio runtime.
    pub fn new(target: Target) -> Self {
        let mut one = Self::group(vec![target]);
        one.swap_remove(0)
    }

    /// A connection to each of `targets`, all served by one task: requests for any of
    /// them that arrive together are written in the same turn, and the replies that
    /// have come back on any of them are handed out in the same turn. For the nodes of
    /// a cluster, whose requests would otherwise go out (and their replies come back)
    /// in as many smaller batches as there are nodes. Must be called inside a Tokio
    /// runtime.
    pub fn group(targets: Vec<Target>) -> Vec<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let conns = targets
            .iter()
            .enumerate()
            .map(|(socket, t)| PipeConn {
                jobs: jobs.clone(),
                socket,
                db: t.db,
            })
            .collect();
        let sockets = targets
            .into_iter()
            .map(|target| Socket {
                target,
                state: State::Idle,
                used: false,
            })
            .collect();
        tokio::spawn(
            Driver {
                rx,
                sockets,
                yielded: false,
            }
            .run(),
        );
        conns
    }

    /// Sends `packed` (one or more commands in RESP) and returns the replies of the
    /// `count` commands after the first `skip`, whose replies are dropped.
    pub async fn send(
        &self,
        packed: Vec<u8>,
        skip: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self.call(packed, skip, count).await? {
            Answer::One(v) => Ok(vec![v]),
            Answer::Many(v) => Ok(v),
        }
    }

    async fn call(&self, packed: Vec<u8>, skip: usize, count: usize) -> RedisResult<Answer> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                socket: self.socket,
                packed,
                skip,
                count,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl ConnectionLike for PipeConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let packed = cmd.get_packed_command();
        Box::pin(async move {
            match self.call(packed, 0, 1).await? {
                Answer::One(v) => Ok(v),
                Answer::Many(mut v) => Ok(v.pop().unwrap_or(Value::Nil)),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let packed = pipeline.get_packed_pipeline();
        Box::pin(async move {
            match self.call(packed, offset, count).await? {
                Answer::One(v) => Ok(vec![v]),
                Answer::Many(v) => Ok(v),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

fn gone() -> RedisError {
    io::Error::new(io::ErrorKind::ConnectionAborted, "Redis connection closed").into()
}

/// Copies an I/O error for every request it fails (`io::Error` is not `Clone`).
fn copy(e: &io::Error) -> RedisError {
    io::Error::new(e.kind(), e.to_string()).into()
}

/// The task of a group of connections (one, or one per cluster node): connects each
/// socket when there is work for it, serves it until it breaks, and starts over.
struct Driver {
    rx: mpsc::UnboundedReceiver<Job>,
    sockets: Vec<Socket>,
    /// Whether the task gave way once since new requests came in (see `poll_serve`).
    yielded: bool,
}

struct Socket {
    target: Target,
    state: State,
    /// Whether it was ever connected (or tried to).
    used: bool,
}

type Connecting = Pin<Box<dyn Future<Output = RedisResult<Stream>> + Send>>;

enum State {
    Idle,
    /// Connecting, with the requests that came in meanwhile.
    Connecting(Connecting, Vec<Job>),
    Open(Box<Link>),
}

impl Driver {
    async fn run(mut self) {
        poll_fn(|cx| self.poll_serve(cx)).await;
    }

    /// Serves until every handle is gone and nothing is awaited.
    fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut fresh = false;
        let mut closed = false;
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(job)) => {
                    fresh |= self.accept(job);
                }
                Poll::Ready(None) => {
                    closed = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        let mut unwritten = false;
        for socket in &mut self.sockets {
            fresh |= socket.poll_connect(cx);
            // Read even when nothing is awaited, to notice at once that Redis closed
            // an idle connection (the next request then connects again instead of
            // failing).
            socket.poll_read(cx);
            unwritten |= socket.unwritten();
        }
        if unwritten {
            // New requests came in: give way once to the other tasks of this worker
            // before writing, so the requests they are about to send go out in the
            // same write (the wake-up puts this task at the back of the queue).
            if fresh && !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut all_written = true;
            for socket in &mut self.sockets {
                all_written &= socket.poll_write(cx);
            }
            if all_written {
                self.yielded = false;
            }
        }
        for socket in &mut self.sockets {
            socket.poll_flush(cx);
        }
        if closed && self.sockets.iter().all(Socket::done) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Takes a request; whether it is waiting to be written.
    fn accept(&mut self, job: Job) -> bool {
        if job.skip + job.count == 0 {
            // Nothing to wait for (an empty pipeline): answered without a round trip.
            let _ = job.reply.send(Ok(Answer::Many(Vec::new())));
            return false;
        }
        let Some(socket) = self.sockets.get_mut(job.socket) else {
            fail(job.reply, &gone());
            return false;
        };
        match &mut socket.state {
            State::Open(link) => {
                link.push(job);
                true
            }
            State::Connecting(_, queued) => {
                queued.push(job);
                false
            }
            State::Idle if socket.used && !socket.target.reconnect => {
                let e: RedisError = io::Error::new(
                    io::ErrorKind::NotConnected,
                    "Redis connection closed earlier (not reconnected)",
                )
                .into();
                fail(job.reply, &e);
                false
            }
            State::Idle => {
                socket.used = true;
                let connecting = Box::pin(connect_within(socket.target.clone()));
                socket.state = State::Connecting(connecting, vec![job]);
                false
            }
        }
    }
}

impl Socket {
    /// Moves a connect along; whether it opened the socket with requests to write.
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Connecting(connecting, queued) = &mut self.state else {
            return false;
        };
        let Poll::Ready(connected) = connecting.as_mut().poll(cx) else {
            return false;
        };
        let queued = std::mem::take(queued);
        match connected {
            Ok(stream) => {
                let mut link = Box::new(Link::new(stream));
                for job in queued {
                    link.push(job);
                }
                self.state = State::Open(link);
                true
            }
            Err(e) => {
                // Everything queued while connecting was never sent: fail it with the
                // reason, so a refusal reads as one (safe to send elsewhere).
                tracing::debug!(error = %e, "cannot connect to Redis");
                for job in queued {
                    fail(job.reply, &e);
                }
                self.state = State::Idle;
                false
            }
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) {
        if let State::Open(link) = &mut self.state {
            if let Err(e) = link.poll_read(cx) {
                self.broke(&e);
            }
        }
    }

    fn unwritten(&self) -> bool {
        matches!(&self.state, State::Open(link) if link.written < link.wbuf.len())
    }

    /// Writes what is queued; whether all of it is written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Open(link) = &mut self.state else {
            return true;
        };
        if let Err(e) = link.poll_write(cx) {
            self.broke(&e);
            return true;
        }
        link.written == link.wbuf.len()
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) {
        if let State::Open(link) = &mut self.state {
            if let Err(e) = link.poll_flush(cx) {
                self.broke(&e);
            }
        }
    }

    /// The socket failed or Redis sent something unreadable: every request waiting on
    /// it fails, and the next one connects again (if this socket reconnects).
    fn broke(&mut self, e: &io::Error) {
        tracing::debug!(error = %e, "Redis connection broke");
        if let State::Open(link) = &mut self.state {
            link.fail_all(e);
        }
        self.state = State::Idle;
    }

    /// Nothing in flight: the task may end once no handle is left.
    fn done(&self) -> bool {
        match &self.state {
            State::Idle => true,
            State::Connecting(..) => false,
            State::Open(link) => {
                link.waiting.is_empty() && link.written == link.wbuf.len() && !link.unflushed
            }
        }
    }
}

/// [`connect`] within the target's connect timeout.
async fn connect_within(target: Target) -> RedisResult<Stream> {
    match tokio::time::timeout(target.connect_timeout, connect(&target)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no connection to Redis within the timeout",
        )
        .into()),
    }
}

fn fail(reply: oneshot::Sender<RedisResult<Answer>>, e: &RedisError) {
    let _ = reply.send(Err(e.clone()));
}

/// The socket of a connection, whichever transport.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Opens the socket (and the TLS session on it).
async fn open(addr: &Addr) -> RedisResult<Stream> {
    Ok(match addr {
        Addr::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port)).await?;
            // Batches are written whole; Nagle would only hold back the last part.
            s.set_nodelay(true)?;
            Stream::Tcp(s)
        }
        Addr::Tls { host, port, config } => {
            let s = TcpStream::connect((host.as_str(), *port)).await?;
            s.set_nodelay(true)?;
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "not a valid TLS server name")
            })?;
            let tls = TlsConnector::from(config.clone()).connect(name, s).await?;
            Stream::Tls(Box::new(tls))
        }
        #[cfg(unix)]
        Addr::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        #[cfg(not(unix))]
        Addr::Unix(_) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Unix sockets need a Unix system",
            )
            .into())
        }
    })
}

/// Opens a socket and logs in (AUTH, SELECT) before any request is sent on it.
async fn connect(t: &Target) -> RedisResult<Stream> {
    let mut stream = open(&t.addr).await?;
    let mut expected = 0;
    let mut packed = Vec::new();
    if let Some(password) = &t.password {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = &t.username {
            auth.arg(user);
        }
        auth.arg(password);
        auth.write_packed_command(&mut packed);
        expected += 1;
    }
    if t.db != 0 {
        redis::cmd("SELECT")
            .arg(t.db)
            .write_packed_command(&mut packed);
        expected += 1;
    }
    if expected == 0 {
        return Ok(stream);
    }
    stream.write_all(&packed).await?;
    let mut buf = Vec::with_capacity(256);
    let mut at = 0;
    let mut seen = 0;
    while seen < expected {
        match resp::parse(&buf[at..]).map_err(protocol)? {
            Some((Value::ServerError(e), _)) => return Err(e.into()),
            Some((_, used)) => {
                at += used;
                seen += 1;
            }
            None => {
                if buf.len() > 64 * 1024 {
                    return Err(protocol(resp::Malformed("login reply too long")));
                }
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
            }
        }
    }
    Ok(stream)
}

fn protocol(e: resp::Malformed) -> RedisError {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string()).into()
}

/// A request sent (or about to be) and waiting for its replies.
struct Waiting {
    reply: oneshot::Sender<RedisResult<Answer>>,
    skip: usize,
    count: usize,
    got: Vec<Value>,
}

/// One open socket and what is in flight on it.
struct Link {
    stream: Stream,
    /// Requests not yet written, from `written` on.
    wbuf: Vec<u8>,
    written: usize,
    /// Replies read but not yet parsed: `rbuf[start..filled]`.
    rbuf: Vec<u8>,
    start: usize,
    filled: usize,
    waiting: VecDeque<Waiting>,
    /// Written but maybe still held by the transport (TLS records not yet sent).
    unflushed: bool,
}

impl Link {
    fn new(stream: Stream) -> Self {
        Link {
            stream,
            wbuf: Vec::with_capacity(READ_BUF),
            written: 0,
            rbuf: vec![0; READ_BUF],
            start: 0,
            filled: 0,
            waiting: VecDeque::new(),
            unflushed: false,
        }
    }

    fn push(&mut self, job: Job) {
        self.wbuf.extend_from_slice(&job.packed);
        self.waiting.push_back(Waiting {
            reply: job.reply,
            skip: job.skip,
            count: job.count,
            got: Vec::new(),
        });
    }

    /// Written data held by the transport (TLS records) goes out.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.unflushed && self.written == self.wbuf.len() {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.written < self.wbuf.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.wbuf[self.written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        self.wbuf.clear();
        self.written = 0;
        if self.wbuf.capacity() > WRITE_BUF_KEEP {
            self.wbuf = Vec::with_capacity(READ_BUF);
        }
        Ok(())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            self.make_room();
            let mut buf = ReadBuf::new(&mut self.rbuf[self.filled..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "Redis closed the connection",
                        ));
                    }
                    self.filled += n;
                    self.dispatch()?;
                }
            }
        }
    }

    /// Keeps at least [`READ_MIN_FREE`] bytes free after `filled`: moves the unparsed
    /// bytes to the front, or grows the buffer when a reply is larger than it.
    fn make_room(&mut self) {
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
            if self.rbuf.len() > READ_BUF {
                self.rbuf = vec![0; READ_BUF];
            }
        }
        if self.rbuf.len() - self.filled >= READ_MIN_FREE {
            return;
        }
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.rbuf.len() - self.filled < READ_MIN_FREE {
            let len = (self.rbuf.len() * 2).max(self.filled + READ_MIN_FREE);
            self.rbuf.resize(len, 0);
        }
    }

    /// Hands every complete reply read so far to the request it answers, in order.
    fn dispatch(&mut self) -> io::Result<()> {
        while self.start < self.filled {
            let parsed = resp::parse(&self.rbuf[self.start..self.filled])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let Some((value, used)) = parsed else {
                return Ok(());
            };
            self.start += used;
            let Some(front) = self.waiting.front_mut() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply from Redis with no request waiting for it",
                ));
            };
            if front.skip > 0 {
                front.skip -= 1;
            } else if front.count == 1 && front.got.is_empty() {
                if let Some(w) = self.waiting.pop_front() {
                    // The caller may have stopped waiting (deadline): nothing to do.
                    let _ = w.reply.send(Ok(Answer::One(value)));
                }
                continue;
            } else {
                front.got.push(value);
            }
            self.complete_front();
        }
        Ok(())
    }

    /// Answers the oldest request if it has all its replies (or wants none).
    fn complete_front(&mut self) {
        let Some(front) = self.waiting.front_mut() else {
            return;
        };
        if front.skip == 0 && front.got.len() >= front.count {
            let got = std::mem::take(&mut front.got);
            if let Some(w) = self.waiting.pop_front() {
                let _ = w.reply.send(Ok(Answer::Many(got)));
            }
        }
    }

    /// Fails every request still waiting: the socket is gone, so their replies are.
    fn fail_all(&mut self, e: &io::Error) {
        for w in self.waiting.drain(..) {
            let _ = w.reply.send(Err(copy(e)));
        }
    }
}
