//! Steady Seneca load for fault tests: clients that open sessions and store data on
//! them, one request at a time per connection, reconnecting when a connection
//! breaks, and recording every request's outcome and every acknowledged write.
//!
//! Each session is written by the one client that opened it, with data
//! `{"c": client, "n": seq}` where `seq` grows with every request of that client, so
//! the newest acknowledged write of a session is well defined and a stored `n` below
//! it means an acknowledged write was lost. A request that got no reply (connection
//! broken, timeout) or an error reply is *in doubt*: it may or may not have been
//! applied, so its `n` is allowed in the store but not required.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::seneca::{line, Client};

/// How the load runs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where the clients connect (the balancer).
    pub addr: SocketAddr,
    pub clients: usize,
    /// Part of every user id, so runs never meet.
    pub tag: String,
    /// How long a client waits for a reply before it gives up on the connection.
    pub reply_wait: Duration,
    /// Pause between two requests of one client (paces the load).
    pub pause: Duration,
    /// Bounds, whatever happens: requests per client and total run time.
    pub max_requests: u64,
    pub max_time: Duration,
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// An error reply, by its `orig.code` (e.g. `STORE_UNAVAILABLE`).
    Error(String),
    /// No connection could be made.
    Connect,
    /// The connection ended before the reply.
    Closed,
    /// No reply within `reply_wait`.
    Timeout,
    /// Writing the request failed.
    Write,
    /// A reply that makes no sense (wrong id, not JSON, a null session on a write).
    Bad(String),
}

impl Outcome {
    pub fn kind(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Error(code) => format!("error reply {code}"),
            Outcome::Connect => "connect failed".into(),
            Outcome::Closed => "connection closed before the reply".into(),
            Outcome::Timeout => "no reply in time".into(),
            Outcome::Write => "write failed".into(),
            Outcome::Bad(what) => format!("bad reply: {what}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub cmd: &'static str,
    /// When the request was sent (or the connect attempted).
    pub sent: Instant,
    /// When its outcome was known.
    pub done: Instant,
    pub outcome: Outcome,
}

impl Event {
    pub fn latency(&self) -> Duration {
        self.done - self.sent
    }
}

/// The writes of one session: the newest acknowledged `n` and every `n` sent.
#[derive(Debug, Clone, Default)]
pub struct Track {
    pub acked: u64,
    pub sent: BTreeSet<u64>,
}

/// Everything the clients saw, merged.
#[derive(Debug, Default)]
pub struct LoadLog {
    /// Sorted by `done`.
    pub events: Vec<Event>,
    /// Sessions whose open was acknowledged, by id.
    pub sessions: HashMap<String, Track>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<LoadLog>>,
}

impl Load {
    /// Starts the clients on the current Tokio runtime.
    pub fn start(spec: &LoadSpec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..spec.clients)
            .map(|c| tokio::spawn(client(spec.clone(), c, stop.clone())))
            .collect();
        Load { stop, handles }
    }

    /// Stops the clients and merges what they saw.
    pub async fn stop(self) -> LoadLog {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = LoadLog::default();
        for h in self.handles {
            let log = h.await.expect("load client panicked");
            all.events.extend(log.events);
            all.sessions.extend(log.sessions);
        }
        all.events.sort_by_key(|e| e.done);
        all
    }
}

struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

async fn connect(addr: SocketAddr) -> Option<Conn> {
    let stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    Some(Conn {
        reader: BufReader::new(r),
        writer: w,
    })
}

/// Sends one act and reads its reply: the result, or what went wrong. The
/// connection is dropped by the caller on anything but a reply.
async fn call(conn: &mut Conn, id: &str, act: &Value, wait: Duration) -> Result<Value, Outcome> {
    if conn
        .writer
        .write_all(line(id, act, true).as_bytes())
        .await
        .is_err()
    {
        return Err(Outcome::Write);
    }
    let mut buf = String::new();
    match tokio::time::timeout(wait, conn.reader.read_line(&mut buf)).await {
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(_)) | Ok(Ok(0)) => Err(Outcome::Closed),
        Ok(Ok(_)) => {
            let v: Value =
                serde_json::from_str(&buf).map_err(|_| Outcome::Bad("not JSON".into()))?;
            if v["id"] != id {
                return Err(Outcome::Bad("reply to another request".into()));
            }
            Ok(v)
        }
    }
}

async fn client(spec: LoadSpec, c: usize, stop: Arc<AtomicBool>) -> LoadLog {
    let start = Instant::now();
    let mut log = LoadLog::default();
    let mut conn: Option<Conn> = None;
    let mut own: Vec<String> = Vec::new();
    let mut seq = 0u64;
    for n in 0..spec.max_requests {
        if stop.load(Ordering::SeqCst) || start.elapsed() > spec.max_time {
            break;
        }
        let sent = Instant::now();
        if conn.is_none() {
            conn = connect(spec.addr).await;
            if conn.is_none() {
                log.events.push(Event {
                    cmd: "connect",
                    sent,
                    done: Instant::now(),
                    outcome: Outcome::Connect,
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(open_conn) = conn.as_mut() else {
            continue;
        };
        seq += 1;
        let data = json!({"c": c, "n": seq});
        let target = if own.len() < 3 || n % 4 == 0 {
            None
        } else {
            Some(own[(n as usize) % own.len()].clone())
        };
        let (cmd, act) = match &target {
            None => (
                "open_session",
                json!({"cmd": "open_session", "user_id": format!("{}-c{c}-s{seq}", spec.tag), "client": "load", "data": data}),
            ),
            Some(id) => {
                if let Some(t) = log.sessions.get_mut(id) {
                    t.sent.insert(seq);
                }
                (
                    "store_session_data",
                    json!({"cmd": "store_session_data", "session_id": id, "data": data}),
                )
            }
        };
        let rid = format!("l{c}x{seq}");
        let reply = call(open_conn, &rid, &act, spec.reply_wait).await;
        let outcome = match reply {
            Err(o) => {
                conn = None;
                o
            }
            Ok(v) => {
                if let Some(code) = v.get("error").filter(|e| !e.is_null()) {
                    Outcome::Error(code["orig"]["code"].as_str().unwrap_or("?").to_string())
                } else if v["res"]["data"]["n"] != seq {
                    Outcome::Bad(format!("{cmd} answered {}", v["res"]))
                } else {
                    match &target {
                        None => {
                            let id = v["res"]["id"].as_str().unwrap_or_default().to_string();
                            log.sessions.insert(
                                id.clone(),
                                Track {
                                    acked: seq,
                                    sent: BTreeSet::from([seq]),
                                },
                            );
                            own.push(id);
                        }
                        Some(id) => {
                            if let Some(t) = log.sessions.get_mut(id) {
                                t.acked = seq;
                            }
                        }
                    }
                    Outcome::Ok
                }
            }
        };
        log.events.push(Event {
            cmd,
            sent,
            done: Instant::now(),
            outcome,
        });
        tokio::time::sleep(spec.pause).await;
    }
    log
}

impl LoadLog {
    /// Requests that did not succeed, by kind, among those done in `[from, to)`.
    pub fn failures(&self, from: Instant, to: Instant) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.done >= from && e.done < to) {
            if e.outcome != Outcome::Ok {
                *m.entry(e.outcome.kind()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Successful requests done in `[from, to)`.
    pub fn successes(&self, from: Instant, to: Instant) -> usize {
        self.events
            .iter()
            .filter(|e| e.done >= from && e.done < to && e.outcome == Outcome::Ok)
            .count()
    }

    /// How long after `from` the last failure was seen (zero when none was): from
    /// then on every request succeeded.
    pub fn disturbance(&self, from: Instant) -> Duration {
        self.events
            .iter()
            .filter(|e| e.done >= from && e.outcome != Outcome::Ok)
            .map(|e| e.done - from)
            .max()
            .unwrap_or_default()
    }

    /// The first success after the last failure that follows `from`.
    pub fn steady_since(&self, from: Instant) -> Option<Instant> {
        let last_failure = self
            .events
            .iter()
            .filter(|e| e.done >= from && e.outcome != Outcome::Ok)
            .map(|e| e.done)
            .max()
            .unwrap_or(from);
        self.events
            .iter()
            .find(|e| e.done >= last_failure && e.outcome == Outcome::Ok)
            .map(|e| e.done)
    }

    /// Acknowledged writes (opens and stores) the clients saw.
    pub fn acknowledged(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.outcome == Outcome::Ok)
            .count()
    }

    /// Reads every session whose open was acknowledged (through `addr`) and returns
    /// what does not hold: the session is there, active, and its data is its newest
    /// acknowledged write or a later in-doubt one.
    pub async fn lost_writes(&self, addr: SocketAddr) -> Vec<String> {
        let mut client = Client::connect(addr).await;
        let mut problems = Vec::new();
        let ids: Vec<&String> = self.sessions.keys().collect();
        for batch in ids.chunks(200) {
            let mut sent = HashMap::new();
            for id in batch {
                let rid = client
                    .send(json!({"cmd": "get_session_by_id", "session_id": id}), true)
                    .await;
                sent.insert(rid, *id);
            }
            for _ in 0..batch.len() {
                let r = client.reply().await;
                let id = sent[r["id"].as_str().expect("reply id")];
                let track = &self.sessions[id];
                let s = &r["res"];
                if r.get("error").is_some_and(|e| !e.is_null()) {
                    problems.push(format!("{id}: read failed: {}", r["error"]));
                } else if s.is_null() {
                    problems.push(format!(
                        "{id}: acknowledged session is gone (acked n={})",
                        track.acked
                    ));
                } else {
                    let n = s["data"]["n"].as_u64().unwrap_or(0);
                    if s["active"] != true {
                        problems.push(format!("{id}: not active"));
                    }
                    if n < track.acked {
                        problems.push(format!(
                            "{id}: acknowledged write n={} lost, the store has n={n}",
                            track.acked
                        ));
                    } else if !track.sent.contains(&n) {
                        problems.push(format!("{id}: data n={n} was never sent"));
                    }
                }
            }
        }
        problems
    }
}

/// Prints failures by kind, one per line, under `title`.
pub fn print_failures(title: &str, failures: &BTreeMap<String, usize>) {
    if failures.is_empty() {
        println!("{title}: none");
        return;
    }
    println!("{title}:");
    for (kind, n) in failures {
        println!("  {n:>6}  {kind}");
    }
}
