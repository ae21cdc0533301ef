//! One client connection under load: keeps up to K requests in flight on one socket,
//! writes them in batches from a reused buffer, matches replies by message id, and
//! turns lost replies into `timeout` (or `disconnected`) instead of waiting forever.
//!
//! A single task drives both directions with non-blocking `try_read`/`try_write`
//! on readiness, so there is no lock and no channel between a reader and a writer.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use crate::scenario::{Cmd, Rng, Scenario};
use crate::stats::{codes, ConnStats, Progress};
use crate::wire::{parse_reply, push_base36, Outcome, RequestWriter, ID_SPACE};

/// Bytes the read buffer keeps free before each read.
const READ_RESERVE: usize = 64 * 1024;

/// How the run is paced, shared by all connections.
#[derive(Debug)]
pub struct Shared {
    pub scenario: Scenario,
    pub inflight: usize,
    pub timeout: Duration,
    /// Requests sent before this instant are warm-up and not recorded.
    pub measure_start: Instant,
    /// Duration mode: no request is sent from this instant on.
    pub send_end: Option<Instant>,
    /// Count mode: measured requests still to send, over all connections.
    pub tickets: Option<AtomicU64>,
    /// Set on Ctrl-C: stop sending, finish what is in flight.
    pub stop: AtomicBool,
    /// Print this many request and reply lines of the first connection on stderr.
    pub show: u32,
    pub progress: Progress,
}

/// Whether to send one more request, and whether it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Warmup,
    Measured,
    Stop,
}

impl Shared {
    pub fn decide(&self, now: Instant) -> Decision {
        if self.stop.load(Ordering::Relaxed) {
            return Decision::Stop;
        }
        if now < self.measure_start {
            return Decision::Warmup;
        }
        if let Some(end) = self.send_end {
            if now >= end {
                return Decision::Stop;
            }
        }
        match &self.tickets {
            Some(t) => {
                match t.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) {
                    Ok(_) => Decision::Measured,
                    Err(_) => Decision::Stop,
                }
            }
            None => Decision::Measured,
        }
    }
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    cmd: Cmd,
    sent: Instant,
    measured: bool,
}

/// Requests in flight, by sequence number. Sequence numbers are handed out in send
/// order and every request has the same timeout, so the window is a deque: the oldest
/// unanswered request is at the front and is the next to time out. Answered slots
/// become `None` and are trimmed off the front.
#[derive(Debug, Default)]
struct InFlight {
    front_seq: u64,
    window: VecDeque<Option<Pending>>,
    live: usize,
}

impl InFlight {
    fn next_seq(&self) -> u64 {
        self.front_seq + self.window.len() as u64
    }

    fn push(&mut self, p: Pending) {
        self.window.push_back(Some(p));
        self.live += 1;
    }

    fn take(&mut self, seq: u64) -> Option<Pending> {
        let idx = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        let p = self.window.get_mut(idx)?.take()?;
        self.live -= 1;
        while let Some(None) = self.window.front() {
            self.window.pop_front();
            self.front_seq += 1;
        }
        Some(p)
    }

    /// Removes requests sent at or before `cutoff`, oldest first.
    fn expire(&mut self, cutoff: Instant, mut f: impl FnMut(Pending)) {
        while let Some(front) = self.window.front() {
            match front {
                Some(p) if p.sent > cutoff => break,
                Some(p) => {
                    f(*p);
                    self.live -= 1;
                }
                None => {}
            }
            self.window.pop_front();
            self.front_seq += 1;
        }
    }

    fn drain(&mut self, mut f: impl FnMut(Pending)) {
        self.front_seq += self.window.len() as u64;
        for p in self.window.drain(..).flatten() {
            f(p);
        }
        self.live = 0;
    }
}

/// One connection's identity: which address it talks to and its client instance id.
pub struct ConnSpec {
    pub index: usize,
    pub addr_index: usize,
    pub addr: SocketAddr,
    pub seed: u64,
}

/// A Seneca client instance id: `<12 base36>/<start ms>/<pid>/<version>/<tag>`.
pub fn make_origin(rng: &mut Rng) -> String {
    let mut nid = Vec::with_capacity(12);
    push_base36(&mut nid, rng.next_u64());
    format!(
        "{}/{}/{}/3.38.0/-",
        String::from_utf8_lossy(&nid),
        epoch_ms(),
        std::process::id()
    )
}

pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    // Requests are batched by hand; Nagle would only add delay to the last one.
    s.set_nodelay(true)?;
    Ok(s)
}

/// Drives one connection until the run stops sending and nothing is in flight.
pub async fn run(shared: Arc<Shared>, spec: ConnSpec, stream: TcpStream) -> ConnStats {
    Conn::new(shared, spec).drive(stream).await
}

struct Conn {
    shared: Arc<Shared>,
    spec: ConnSpec,
    rng: Rng,
    writer: RequestWriter,
    /// `<mid>` = (salt + seq) mod 36^12, so ids look random but map back to a slot.
    salt: u64,
    inflight: InFlight,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    stats: ConnStats,
    sending: bool,
    /// Request and reply lines still to print (`--show`).
    show_requests: u32,
    show_replies: u32,
}

impl Conn {
    fn new(shared: Arc<Shared>, spec: ConnSpec) -> Conn {
        let mut rng = Rng::new(spec.seed);
        let writer = RequestWriter::new(&make_origin(&mut rng));
        let salt = rng.below(ID_SPACE);
        Conn {
            show_requests: if spec.index == 0 { shared.show } else { 0 },
            show_replies: if spec.index == 0 { shared.show } else { 0 },
            shared,
            spec,
            rng,
            writer,
            salt,
            inflight: InFlight::default(),
            wbuf: Vec::with_capacity(64 * 1024),
            wpos: 0,
            rbuf: Vec::with_capacity(READ_RESERVE * 2),
            stats: ConnStats::default(),
            sending: true,
        }
    }

    async fn drive(mut self, stream: TcpStream) -> ConnStats {
        let timeout = self.shared.timeout;
        let check_every = (timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stream = Some(stream);
        loop {
            let now = Instant::now();
            if let Some(cutoff) = now.checked_sub(timeout) {
                self.expire(cutoff);
            }
            let Some(s) = stream.as_mut() else {
                if !self.sending || !self.shared.still_sending(now) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(s) = connect(self.spec.addr).await {
                    stream = Some(s);
                }
                continue;
            };
            if self.sending {
                self.fill(now);
            }
            if !self.sending && self.inflight.live == 0 {
                break;
            }
            if self.wpos < self.wbuf.len() && self.write(s).is_err() {
                self.disconnected(&mut stream);
                continue;
            }
            let interest = if self.wpos < self.wbuf.len() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let ready = tokio::select! {
                r = s.ready(interest) => r,
                _ = tick.tick() => continue,
            };
            let ready = match ready {
                Ok(r) => r,
                Err(_) => {
                    self.disconnected(&mut stream);
                    continue;
                }
            };
            if ready.is_writable() && self.write(s).is_err() {
                self.disconnected(&mut stream);
                continue;
            }
            if ready.is_readable() || ready.is_read_closed() {
                match self.read(s) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => self.disconnected(&mut stream),
                }
            }
        }
        self.stats
    }

    /// Tops the connection up to K requests in flight.
    fn fill(&mut self, now: Instant) {
        let k = self.shared.inflight;
        if self.inflight.live >= k {
            return;
        }
        let sent_ms = epoch_ms();
        while self.inflight.live < k {
            let measured = match self.shared.decide(now) {
                Decision::Stop => {
                    self.sending = false;
                    return;
                }
                Decision::Warmup => false,
                Decision::Measured => true,
            };
            let scenario = &self.shared.scenario;
            let cmd = scenario.mix.pick(&mut self.rng);
            let seq = self.inflight.next_seq();
            let line_start = self.wbuf.len();
            let mid = (self.salt + seq) % ID_SPACE;
            let cid = self.rng.next_u64();
            self.writer
                .begin(&mut self.wbuf, mid, cid, sent_ms, cmd.wire_name());
            scenario.write_args(
                &mut self.wbuf,
                cmd,
                self.spec.addr_index,
                &mut self.rng,
                self.spec.index,
                seq,
            );
            self.writer.end(&mut self.wbuf, mid, cid);
            if self.show_requests > 0 {
                self.show_requests -= 1;
                eprint!("> {}", String::from_utf8_lossy(&self.wbuf[line_start..]));
            }
            self.inflight.push(Pending {
                cmd,
                sent: now,
                measured,
            });
        }
    }

    fn write(&mut self, s: &TcpStream) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match s.try_write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(())
    }

    /// Reads what is there and handles every complete line. `Ok(false)` on EOF.
    fn read(&mut self, s: &TcpStream) -> io::Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_RESERVE / 4 {
            self.rbuf.reserve(READ_RESERVE);
        }
        match s.try_read_buf(&mut self.rbuf) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        // Lines borrow the buffer while `on_line` updates the rest of `self`.
        let mut buf = std::mem::take(&mut self.rbuf);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            self.on_line(&buf[start..end], now);
            start = end + 1;
        }
        buf.drain(..start);
        self.rbuf = buf;
        Ok(true)
    }

    fn on_line(&mut self, line: &[u8], now: Instant) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if self.show_replies > 0 {
            self.show_replies -= 1;
            eprintln!("< {}", String::from_utf8_lossy(line));
        }
        let reply = match parse_reply(line, self.writer.origin()) {
            Ok(r) => r,
            Err(_) => {
                self.stats.unreadable_lines += 1;
                return;
            }
        };
        let seq = reply.mid.map(|mid| (mid + ID_SPACE - self.salt) % ID_SPACE);
        let Some(p) = seq.and_then(|seq| self.inflight.take(seq)) else {
            self.stats.unmatched_replies += 1;
            return;
        };
        let is_error = !matches!(reply.outcome, Outcome::Ok { .. });
        self.shared.progress.finished(is_error);
        if !p.measured {
            return;
        }
        self.stats.last_reply = Some(now);
        let cs = self.stats.cmd(p.cmd);
        match reply.outcome {
            Outcome::Ok { null_result } => {
                cs.record_ok(now.saturating_duration_since(p.sent), null_result)
            }
            Outcome::Error(code) => cs.errors.add(&code, 1),
            Outcome::Bad(_) => cs.errors.add(codes::BAD_REPLY, 1),
        }
    }

    fn expire(&mut self, cutoff: Instant) {
        let (stats, progress) = (&mut self.stats, &self.shared.progress);
        self.inflight.expire(cutoff, |p| {
            progress.finished(true);
            if p.measured {
                stats.cmd(p.cmd).errors.add(codes::TIMEOUT, 1);
            }
        });
    }

    fn disconnected(&mut self, stream: &mut Option<TcpStream>) {
        *stream = None;
        self.stats.disconnects += 1;
        let (stats, progress) = (&mut self.stats, &self.shared.progress);
        self.inflight.drain(|p| {
            progress.finished(true);
            if p.measured {
                stats.cmd(p.cmd).errors.add(codes::DISCONNECTED, 1);
            }
        });
        self.wbuf.clear();
        self.wpos = 0;
        self.rbuf.clear();
    }
}

impl Shared {
    /// Whether requests may still be sent, like [`Shared::decide`] without taking a
    /// ticket (used while reconnecting).
    fn still_sending(&self, now: Instant) -> bool {
        if self.stop.load(Ordering::Relaxed) || self.send_end.is_some_and(|end| now >= end) {
            return false;
        }
        match &self.tickets {
            Some(t) => now < self.measure_start || t.load(Ordering::Relaxed) > 0,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(sent: Instant) -> Pending {
        Pending {
            cmd: Cmd::Get,
            sent,
            measured: true,
        }
    }

    #[test]
    fn window_takes_out_of_order_and_trims() {
        let t = Instant::now();
        let mut w = InFlight::default();
        for _ in 0..4 {
            let _ = w.next_seq();
            w.push(pending(t));
        }
        assert_eq!(w.live, 4);
        assert!(w.take(2).is_some());
        assert!(w.take(2).is_none(), "a duplicate reply matches nothing");
        assert_eq!(w.window.len(), 4);
        assert!(w.take(0).is_some());
        assert_eq!(w.front_seq, 1);
        assert!(w.take(1).is_some());
        assert_eq!(
            w.front_seq, 3,
            "answered slots behind the front are trimmed too"
        );
        assert_eq!(w.next_seq(), 4);
        assert!(w.take(99).is_none());
        assert_eq!(w.live, 1);
    }

    #[test]
    fn expiry_removes_only_old_requests() {
        let t = Instant::now();
        let mut w = InFlight::default();
        w.push(pending(t));
        w.push(pending(t + Duration::from_millis(5)));
        w.push(pending(t + Duration::from_millis(10)));
        assert!(w.take(1).is_some());
        let mut expired = 0;
        w.expire(t + Duration::from_millis(7), |_| expired += 1);
        assert_eq!(expired, 1, "seq 1 was answered, seq 2 is young");
        assert_eq!((w.front_seq, w.live), (2, 1));
        let mut drained = 0;
        w.drain(|_| drained += 1);
        assert_eq!((drained, w.live), (1, 0));
        assert_eq!(w.next_seq(), 3, "sequence numbers are never reused");
    }

    #[test]
    fn decisions_follow_the_clock_and_tickets() {
        let t = Instant::now();
        let shared = Shared {
            scenario: crate::scenario::Scenario::new(
                crate::scenario::Mix::single(Cmd::List),
                vec![vec![]],
                "x",
                1,
                16,
                1,
                false,
            ),
            inflight: 1,
            timeout: Duration::from_secs(1),
            measure_start: t + Duration::from_secs(1),
            send_end: None,
            tickets: Some(AtomicU64::new(2)),
            stop: AtomicBool::new(false),
            show: 0,
            progress: Progress::default(),
        };
        assert_eq!(shared.decide(t), Decision::Warmup);
        let later = t + Duration::from_secs(2);
        assert_eq!(shared.decide(later), Decision::Measured);
        assert_eq!(shared.decide(later), Decision::Measured);
        assert_eq!(shared.decide(later), Decision::Stop);
        assert!(shared.still_sending(t));
        assert!(!shared.still_sending(later));
        shared.stop.store(true, Ordering::Relaxed);
        assert_eq!(shared.decide(t), Decision::Stop);
    }
}
