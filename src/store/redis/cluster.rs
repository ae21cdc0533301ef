//! Redis Cluster over the store's own connections (`pipe.rs`): the slot map, a few
//! batching connections per primary, routing by the slot of each command's first key,
//! MOVED and ASK, and refreshing the map when the topology changes.
//!
//! - **The map** comes from `CLUSTER SLOTS`, asked of the known nodes, then of the
//!   seeds (any reachable node is enough; when several answer, the view of most of
//!   three wins, so a restarted node still claiming its old slots is outvoted). It is asked in the background when the
//!   store is built, and again, at most every [`REFRESH_PAUSE`], whenever a request
//!   meets a sign that it is out of date: a MOVED, a CLUSTERDOWN or TRYAGAIN, a node
//!   that refuses connections, drops them or does not answer. Requests made before
//!   the first map wait for it (within their deadline); concurrent refreshes are one.
//! - **Connections**: a few per primary, all served by one task
//!   ([`PipeConn::group`]), so that the requests of one turn go to every primary in
//!   the same turn and the replies that came back meanwhile are handed out together:
//!   with a task per node, each node got its own smaller batches and the service's
//!   replies to its clients were split as many times (measured in
//!   `docs/benchmarks.md`). They reconnect by themselves, like a standalone server's,
//!   and are kept as long as the set of primaries stays the same; a refresh that
//!   finds another set (a failover, a resharding onto a new node) connects to the new
//!   set, and the old connections close once idle. A node that only a redirect named
//!   gets connections of its own until a refresh puts it in the map.
//! - **Routing**: every command of the store touches one bucket, so one slot (the
//!   bucket's hash tag); the slot is computed from the command's first key (the first
//!   argument, or for EVAL/EVALSHA the first of KEYS). A batch over many buckets (a
//!   listing over all users, the counts) goes out as one pipeline per primary, all at
//!   once, and its replies are put back in order; no request ever spans slots.
//! - **Redirects**: MOVED (the slot has a new owner) sends the command again to the
//!   node named, and refreshes the map; ASK (the slot is being migrated and the key
//!   is already on the target) sends `ASKING` and the command to the node named. A
//!   redirect means the command did not run, so scripts follow them too. After
//!   [`MAX_REDIRECTS`] the error reply stands (and is `Unavailable`).
//!
//! What is sent again after an error (a refused connection, CLUSTERDOWN, a dropped
//! connection under a read) is decided in `conn.rs`, as for the other topologies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::join_all;
use redis::{Arg, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisResult, Value};
use rustls::ClientConfig;
use tokio::time::Instant;

use super::conn::Batch;
use super::node;
use super::options::TlsPem;
use super::pipe::{Addr, PipeConn, Target};

/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
/// Redirects followed for one command before its error reply is the answer.
const MAX_REDIRECTS: usize = 5;
/// Least time between two refreshes of the map asked for by failing requests.
const REFRESH_PAUSE: Duration = Duration::from_millis(100);
/// Nodes whose `CLUSTER SLOTS` a refresh compares (when that many answer).
const VIEWS: usize = 3;
/// Longest wait for one node's `CLUSTER SLOTS`, so a dead node is passed over quickly.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    seeds: Vec<Target>,
    /// Transport and login of every node: the first seed's.
    tls: Option<Arc<ClientConfig>>,
    username: Option<String>,
    password: Option<String>,
    timeout: Duration,
    connections: usize,
    map: RwLock<SlotMap>,
    /// Every node in the map (and any a redirect named since), by `host:port`.
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    /// The primaries whose connections are served together, by name, sorted.
    grouped: Mutex<Vec<String>>,
    refreshing: tokio::sync::Mutex<()>,
    /// When the last refresh ended, whether it found a map or not.
    refreshed: Mutex<Option<Instant>>,
}

/// Which primary serves each slot; empty until the first refresh.
#[derive(Default)]
struct SlotMap {
    owners: Vec<Option<Arc<Node>>>,
    /// A primary for commands without a key (PING).
    any: Option<Arc<Node>>,
}

/// One node and the connections to it, used round-robin.
pub(crate) struct Node {
    name: String,
    host: String,
    conns: Box<[PipeConn]>,
    next: AtomicUsize,
}

impl Node {
    fn pick(&self) -> &PipeConn {
        &self.conns[self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()]
    }
}

impl Cluster {
    /// A cluster reached through `seeds`; asks for the map in the background. Must be
    /// called inside a Tokio runtime.
    pub fn new(
        seeds: &[ConnectionInfo],
        pem: &TlsPem,
        connections: usize,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = node::tls_for(seeds, pem)?;
        let targets = seeds
            .iter()
            .map(|s| node::target(s, tls.as_ref(), timeout, false))
            .collect::<Result<Vec<_>, _>>()?;
        let first = targets.first().ok_or("no Redis Cluster seed given")?;
        if matches!(first.addr, Addr::Unix(_)) {
            return Err("Redis Cluster nodes are reached over TCP, not Unix sockets".into());
        }
        let inner = Arc::new(Inner {
            username: first.username.clone(),
            password: first.password.clone(),
            seeds: targets,
            tls,
            timeout,
            connections: connections.max(1),
            map: RwLock::new(SlotMap::default()),
            nodes: Mutex::new(HashMap::new()),
            grouped: Mutex::new(Vec::new()),
            refreshing: tokio::sync::Mutex::new(()),
            refreshed: Mutex::new(None),
        });
        let cluster = Cluster { inner };
        cluster.stale();
        Ok(cluster)
    }

    /// One command, routed by its key; its reply.
    pub async fn one(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut replies = self
            .routed(slot_of(cmd), 1, &|buf: &mut Vec<u8>| {
                cmd.write_packed_command(buf)
            })
            .await?;
        Ok(replies.pop().unwrap_or(Value::Nil))
    }

    /// Commands sent together on one connection (a script and its WAIT), routed by
    /// the first one's key.
    pub async fn together(&self, p: &Pipeline) -> RedisResult<Vec<Value>> {
        let slot = p.cmd_iter().next().and_then(slot_of);
        self.routed(slot, p.len(), &|buf: &mut Vec<u8>| {
            for c in p.cmd_iter() {
                c.write_packed_command(buf);
            }
        })
        .await
    }

    /// A batch over any buckets: one pipeline per primary, sent at once; replies in
    /// the batch's order. A command redirected (its slot moved meanwhile) is sent
    /// again on its own, following the redirect.
    pub async fn batch(&self, batch: &Batch) -> RedisResult<Vec<Value>> {
        let cmds: Vec<&Cmd> = batch.pipeline().cmd_iter().collect();
        if !self.inner.known() {
            self.inner.refresh().await?;
        }
        let mut groups: Vec<(Arc<Node>, Vec<u8>, Vec<usize>)> = Vec::new();
        for (at, cmd) in cmds.iter().enumerate() {
            let slot = slot_of(cmd);
            let node = self.inner.lookup(slot).ok_or_else(|| no_owner(slot))?;
            let g = match groups.iter().position(|(n, ..)| Arc::ptr_eq(n, &node)) {
                Some(g) => g,
                None => {
                    groups.push((node, Vec::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            cmd.write_packed_command(&mut groups[g].1);
            groups[g].2.push(at);
        }
        let sends = groups
            .into_iter()
            .map(|(node, packed, positions)| async move {
                let n = positions.len();
                node.pick().send(packed, 0, n).await.map(|v| (positions, v))
            });
        let mut out = vec![Value::Nil; cmds.len()];
        for sent in join_all(sends).await {
            let (positions, values) = sent?;
            for (at, v) in positions.into_iter().zip(values) {
                out[at] = v;
            }
        }
        for (at, cmd) in cmds.iter().enumerate() {
            if redirect(&out[at]).is_some() {
                out[at] = self.one(cmd).await?;
            }
        }
        Ok(out)
    }

    /// The map may be out of date (a request failed in a way that suggests so):
    /// refresh it in the background, unless that happened just now or is under way.
    pub fn stale(&self) {
        let inner = self.inner.clone();
        if inner.refreshed_within(REFRESH_PAUSE) {
            return;
        }
        tokio::spawn(async move {
            if let Err(e) = inner.refresh().await {
                tracing::debug!(error = %e, "cannot refresh the Redis Cluster slot map");
            }
        });
    }

    /// Sends what `pack` writes (`count` commands) to the owner of `slot`, following
    /// redirects.
    async fn routed(
        &self,
        slot: Option<u16>,
        count: usize,
        pack: &(dyn Fn(&mut Vec<u8>) + Sync),
    ) -> RedisResult<Vec<Value>> {
        let mut node = match self.inner.lookup(slot) {
            Some(n) => n,
            None => {
                // Boxed: rare, and its future would grow every request's.
                Box::pin(self.inner.refresh()).await?;
                self.inner.lookup(slot).ok_or_else(|| no_owner(slot))?
            }
        };
        let mut asking = false;
        let mut redirects = 0;
        loop {
            let mut packed = Vec::new();
            if asking {
                redis::cmd("ASKING").write_packed_command(&mut packed);
            }
            pack(&mut packed);
            let replies = node.pick().send(packed, usize::from(asking), count).await?;
            let Some((moved, to)) = replies.first().and_then(redirect) else {
                return Ok(replies);
            };
            if redirects == MAX_REDIRECTS {
                return Ok(replies);
            }
            redirects += 1;
            if moved {
                self.stale();
            }
            asking = !moved;
            node = self.inner.node_named(&to, &node.host);
        }
    }
}

impl Inner {
    fn known(&self) -> bool {
        !self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .owners
            .is_empty()
    }

    /// The primary serving `slot` (any primary for `None`), if the map knows it.
    fn lookup(&self, slot: Option<u16>) -> Option<Arc<Node>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match slot {
            Some(s) => map.owners.get(usize::from(s))?.clone(),
            None => map.any.clone(),
        }
    }

    fn refreshed_within(&self, pause: Duration) -> bool {
        self.refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < pause)
    }

    /// Asks the known nodes, then the seeds, for the map until one answers.
    async fn refresh(&self) -> RedisResult<()> {
        let asked = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        // Someone else may have refreshed while this one waited.
        let fresh = *self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        if fresh.is_some_and(|at| at >= asked) {
            return Ok(());
        }
        let mut candidates: Vec<Target> = {
            let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            nodes
                .values()
                .filter_map(|n| n.name.rsplit_once(':'))
                .filter_map(|(h, p)| Some(self.target(h, p.parse().ok()?)))
                .collect()
        };
        candidates.extend(self.seeds.iter().cloned());
        let found = self.ask(candidates).await;
        *self.refreshed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        found
    }

    /// Asks `candidates` in turn for the map, until [`VIEWS`] have answered, and
    /// installs the map most of them gave: a node that was just restarted (a failed
    /// primary coming back) may still claim its old slots for a moment.
    async fn ask(&self, candidates: Vec<Target>) -> RedisResult<()> {
        let mut last = None;
        let mut views: Vec<(Vec<Range>, usize)> = Vec::new();
        let mut asked: Vec<String> = Vec::new();
        for t in candidates {
            let (host, port) = match &t.addr {
                Addr::Tcp { host, port } | Addr::Tls { host, port, .. } => (host.clone(), *port),
                Addr::Unix(_) => continue,
            };
            let name = format!("{host}:{port}");
            if asked.contains(&name) {
                continue;
            }
            asked.push(name);
            let wait = ASK_TIMEOUT.min(self.timeout);
            let reply = tokio::time::timeout(wait, ask_slots(t)).await;
            match reply
                .unwrap_or_else(|_| Err(timed_out()))
                .and_then(|r| parse_slots(r, &host))
            {
                Ok(mut ranges) => {
                    ranges.sort_unstable();
                    match views.iter_mut().find(|(v, _)| *v == ranges) {
                        Some((_, n)) => *n += 1,
                        None => views.push((ranges, 1)),
                    }
                    if views.iter().map(|(_, n)| n).sum::<usize>() == VIEWS {
                        break;
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        // The most common view; the first one seen among equals.
        let mut best: Option<(Vec<Range>, usize)> = None;
        for (v, n) in views {
            if best.as_ref().is_none_or(|(_, b)| n > *b) {
                best = Some((v, n));
            }
        }
        match best {
            Some((ranges, _)) => {
                self.install(ranges);
                Ok(())
            }
            None => Err(last.unwrap_or_else(|| no_owner(None))),
        }
    }

    /// Makes `ranges` the map, keeping the connections when the primaries are the
    /// same as before.
    fn install(&self, ranges: Vec<Range>) {
        let mut names: Vec<String> = ranges.iter().map(Range::name).collect();
        names.sort_unstable();
        names.dedup();
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let mut grouped = self.grouped.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept: HashMap<String, Arc<Node>> = HashMap::new();
        if *grouped == names {
            for name in &names {
                if let Some(n) = nodes.remove(name) {
                    kept.insert(name.clone(), n);
                }
            }
        }
        if kept.len() != names.len() {
            kept = self.make_group(&ranges);
            *grouped = names;
        }
        let mut owners: Vec<Option<Arc<Node>>> = vec![None; usize::from(SLOTS)];
        for r in &ranges {
            let node = kept.get(&r.name()).cloned();
            for slot in r.start..=r.end {
                owners[usize::from(slot)].clone_from(&node);
            }
        }
        let any = owners.iter().flatten().next().cloned();
        *nodes = kept;
        drop(grouped);
        drop(nodes);
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = SlotMap { owners, any };
    }

    /// Nodes for the primaries of `ranges`, their connections served by one task.
    fn make_group(&self, ranges: &[Range]) -> HashMap<String, Arc<Node>> {
        let mut primaries: Vec<(&str, u16)> = Vec::new();
        for r in ranges {
            if !primaries.contains(&(r.host.as_str(), r.port)) {
                primaries.push((r.host.as_str(), r.port));
            }
        }
        let targets = primaries
            .iter()
            .flat_map(|(host, port)| {
                let mut t = self.target(host, *port);
                t.reconnect = true;
                std::iter::repeat_n(t, self.connections)
            })
            .collect();
        let mut conns = PipeConn::group(targets).into_iter();
        primaries
            .into_iter()
            .map(|(host, port)| {
                let node = Node {
                    name: format!("{host}:{port}"),
                    host: host.to_owned(),
                    conns: conns.by_ref().take(self.connections).collect(),
                    next: AtomicUsize::new(0),
                };
                (node.name.clone(), Arc::new(node))
            })
            .collect()
    }

    /// The node a redirect names (`host:port`, or `:port` for the host of the node
    /// that answered `from_host`).
    fn node_named(&self, to: &str, from_host: &str) -> Arc<Node> {
        let (host, port) = match to.rsplit_once(':') {
            Some(("", port)) => (from_host, port),
            Some((host, port)) => (host, port),
            None => (from_host, to),
        };
        let port: u16 = port.parse().unwrap_or(0);
        let name = format!("{host}:{port}");
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .entry(name)
            .or_insert_with(|| self.make_node(host, port))
            .clone()
    }

    /// A node outside the map (named by a redirect), with connections of its own.
    fn make_node(&self, host: &str, port: u16) -> Arc<Node> {
        let mut target = self.target(host, port);
        target.reconnect = true;
        Arc::new(Node {
            name: format!("{host}:{port}"),
            host: host.to_owned(),
            conns: (0..self.connections)
                .map(|_| PipeConn::new(target.clone()))
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// How to reach a node at `host:port`: the seeds' transport and login.
    fn target(&self, host: &str, port: u16) -> Target {
        let host = host.to_owned();
        let addr = match &self.tls {
            Some(config) => Addr::Tls {
                host,
                port,
                config: config.clone(),
            },
            None => Addr::Tcp { host, port },
        };
        Target {
            addr,
            username: self.username.clone(),
            password: self.password.clone(),
            db: 0,
            connect_timeout: self.timeout,
            reconnect: false,
        }
    }
}

/// `CLUSTER SLOTS` of one node, on a connection of its own.
async fn ask_slots(t: Target) -> RedisResult<Value> {
    let conn = PipeConn::new(t);
    let mut packed = Vec::new();
    redis::cmd("CLUSTER")
        .arg("SLOTS")
        .write_packed_command(&mut packed);
    let mut v = conn.send(packed, 0, 1).await?;
    match v.pop() {
        Some(Value::ServerError(e)) => Err(e.into()),
        Some(v) => Ok(v),
        None => Err(malformed("no CLUSTER SLOTS reply")),
    }
}

/// A range of slots and the primary serving it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Range {
    start: u16,
    end: u16,
    host: String,
    port: u16,
}

impl Range {
    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The ranges of a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id, ...],
/// replicas...], ...]`). An empty or `?` host is the node asked (`asked_host`).
fn parse_slots(reply: Value, asked_host: &str) -> RedisResult<Vec<Range>> {
    let Value::Array(ranges) = reply else {
        return Err(malformed("CLUSTER SLOTS is not an array"));
    };
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(items) = r else {
            return Err(malformed("a CLUSTER SLOTS range is not an array"));
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (items.first(), items.get(1), items.get(2))
        else {
            return Err(malformed("a CLUSTER SLOTS range has no primary"));
        };
        let host = match primary.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => return Err(malformed("a CLUSTER SLOTS primary has no host")),
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            return Err(malformed("a CLUSTER SLOTS primary has no port"));
        };
        let (Ok(start), Ok(end), Ok(port)) = (
            u16::try_from(*start),
            u16::try_from(*end),
            u16::try_from(*port),
        ) else {
            return Err(malformed("a CLUSTER SLOTS range is out of bounds"));
        };
        if start > end || end >= SLOTS {
            return Err(malformed("a CLUSTER SLOTS range is out of bounds"));
        }
        out.push(Range {
            start,
            end,
            host,
            port,
        });
    }
    if out.is_empty() {
        return Err(RedisError::from((
            ErrorKind::ClusterConnectionNotFound,
            "the cluster serves no slot yet",
        )));
    }
    Ok(out)
}

/// `(true, node)` for a MOVED reply, `(false, node)` for ASK.
fn redirect(v: &Value) -> Option<(bool, String)> {
    let Value::ServerError(e) = v else {
        return None;
    };
    let moved = match e.code() {
        "MOVED" => true,
        "ASK" => false,
        _ => return None,
    };
    // "<slot> <host>:<port>"
    let to = e.details()?.split_whitespace().nth(1)?;
    Some((moved, to.to_owned()))
}

/// The slot of a command's first key; `None` for a command without one.
fn slot_of(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().map(|a| match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()??;
    let key = if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        args.next()??;
        if args.next()?? == b"0" {
            return None;
        }
        args.next()??
    } else if name.eq_ignore_ascii_case(b"PING") || name.eq_ignore_ascii_case(b"WAIT") {
        return None;
    } else {
        args.next()??
    };
    Some(key_slot(key))
}

/// The hash slot of `key`: CRC16 of its hash tag (the part between the first `{` and
/// the next `}`, when not empty) or of the whole key, modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&c| c == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|&c| c == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn no_owner(slot: Option<u16>) -> RedisError {
    let what = match slot {
        Some(s) => format!("slot {s}"),
        None => "any slot".to_owned(),
    };
    RedisError::from((
        ErrorKind::ClusterConnectionNotFound,
        "no known Redis Cluster node serves the request",
        what,
    ))
}

fn malformed(what: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "unexpected Redis Cluster reply",
        what.into(),
    ))
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no slot map from the Redis Cluster node in time",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn slots_follow_redis_cluster_hashing() {
        // The CRC-16/XMODEM check value, and slots Redis reports (CLUSTER KEYSLOT).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"sessions:{3f}:s:3fab"), key_slot(b"3f"));
    }

    #[test]
    fn commands_route_by_their_first_key() {
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg("p:{0a}:s:0a12");
        assert_eq!(slot_of(&hgetall), Some(key_slot(b"0a")));
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg("abc")
            .arg(2)
            .arg("p:{1b}:oa")
            .arg("p:{1b}:oc")
            .arg("x");
        assert_eq!(slot_of(&evalsha), Some(key_slot(b"1b")));
        let mut keyless = redis::cmd("EVAL");
        keyless.arg("return 1").arg(0);
        assert_eq!(slot_of(&keyless), None);
        assert_eq!(slot_of(&redis::cmd("PING")), None);
    }

    #[test]
    fn redirects_are_read_from_error_replies() {
        let parsed = |s: &str| redis::parse_redis_value(s.as_bytes()).unwrap();
        assert_eq!(
            redirect(&parsed("-MOVED 3999 127.0.0.1:6381\r\n")),
            Some((true, "127.0.0.1:6381".into()))
        );
        assert_eq!(
            redirect(&parsed("-ASK 3999 10.0.0.2:7000\r\n")),
            Some((false, "10.0.0.2:7000".into()))
        );
        assert_eq!(redirect(&parsed("-ERR no\r\n")), None);
        assert_eq!(redirect(&Value::Int(1)), None);
    }

    #[test]
    fn cluster_slots_replies_become_ranges() {
        let node =
            |host: &str, port: i64| Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
        ]);
        let ranges = parse_slots(reply, "seed").unwrap();
        assert_eq!(
            ranges,
            [
                Range {
                    start: 0,
                    end: 5460,
                    host: "10.0.0.1".into(),
                    port: 7000
                },
                Range {
                    start: 5461,
                    end: 16383,
                    host: "seed".into(),
                    port: 7001
                }
            ]
        );
        assert!(parse_slots(Value::Array(vec![]), "seed").is_err());
        let out_of_bounds = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16384),
            node("h", 1),
        ])]);
        assert!(parse_slots(out_of_bounds, "seed").is_err());
    }
}
