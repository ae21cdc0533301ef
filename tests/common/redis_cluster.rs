//! A throwaway Redis Cluster: six redis-server processes in cluster mode on free
//! loopback ports (three primaries, one replica each), joined with
//! `redis-cli --cluster create`. Every process is killed when the value is dropped.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;

/// How long a node may be unreachable before the cluster fails it over (ms).
pub const NODE_TIMEOUT_MS: u64 = 2000;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

/// A node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// The primary's id, for a replica.
    pub primary_id: Option<String>,
}

impl RedisCluster {
    /// Starts six nodes and forms a cluster of three primaries with a replica each;
    /// returns once every node reports a healthy cluster and every replica is in sync.
    pub fn start() -> RedisCluster {
        let node_timeout = NODE_TIMEOUT_MS.to_string();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = RedisCluster { nodes };
        c.wait_healthy(Duration::from_secs(30));
        c
    }

    /// Seed URLs of every node, comma-separated (what `REDIS_URL` takes in cluster mode).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A synchronous connection to the node on `port`.
    pub fn conn(port: u16) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
        let c = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to a cluster node");
        c.set_read_timeout(Some(Duration::from_secs(5))).ok();
        c
    }

    /// `CLUSTER NODES` as seen by the node on `port`.
    pub fn topology(port: u16) -> Vec<NodeInfo> {
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut Self::conn(port))
            .expect("CLUSTER NODES");
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let addr = f.get(1)?.split('@').next()?;
                let port = addr.rsplit(':').next()?.parse().ok()?;
                let flags = f.get(2)?;
                Some(NodeInfo {
                    id: f.first()?.to_string(),
                    port,
                    primary: flags.contains("master"),
                    failed: flags.contains("fail"),
                    primary_id: f.get(3).filter(|m| **m != "-").map(|m| m.to_string()),
                })
            })
            .collect()
    }

    /// The ports of the primaries, as seen from a live node.
    pub fn primaries(&self) -> Vec<u16> {
        let live = self.live_port();
        let mut p: Vec<u16> = Self::topology(live)
            .into_iter()
            .filter(|n| n.primary && !n.failed)
            .map(|n| n.port)
            .collect();
        p.sort_unstable();
        p
    }

    /// The port of the replica of the primary on `port`.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let nodes = Self::topology(self.live_port());
        let id = nodes.iter().find(|n| n.port == port)?.id.clone();
        nodes
            .iter()
            .find(|n| n.primary_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.ping())
            .map(|n| n.port)
            .expect("a live cluster node")
    }

    /// Kills (SIGKILL) the node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// Starts the node on `port` again (same directory, so same cluster identity): a
    /// failed-over primary comes back as a replica of the node that replaced it.
    pub fn restart(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.restart();
        }
    }

    /// Keys per primary port (DBSIZE on each primary).
    pub fn keys_per_primary(&self) -> BTreeMap<u16, u64> {
        self.primaries()
            .into_iter()
            .map(|p| {
                let n: u64 = redis::cmd("DBSIZE")
                    .query(&mut Self::conn(p))
                    .expect("DBSIZE");
                (p, n)
            })
            .collect()
    }

    /// How many error replies of `code` (e.g. "CROSSSLOT") each live node ever sent
    /// (`INFO errorstats`).
    pub fn error_count(&self, code: &str) -> u64 {
        let needle = format!("errorstat_{code}:count=");
        self.nodes
            .iter()
            .filter(|n| n.ping())
            .map(|n| {
                let info: String = redis::cmd("INFO")
                    .arg("errorstats")
                    .query(&mut Self::conn(n.port))
                    .unwrap_or_default();
                info.lines()
                    .find_map(|l| l.strip_prefix(&needle))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Waits until every live node sees the cluster as ok with all slots served,
    /// every live primary has an in-sync replica, and they agree on who is primary.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.health() {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => {
                    panic!("the Redis Cluster did not become healthy: {why}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until every live node reports `cluster_state:ok` (the slots of a failed
    /// primary are served by its promoted replica).
    pub fn wait_state_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.live_nodes_ok() {
            assert!(
                Instant::now() < deadline,
                "the cluster did not recover its state"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn live_nodes_ok(&self) -> bool {
        self.nodes.iter().filter(|n| n.ping()).all(|n| {
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut Self::conn(n.port))
                .is_ok_and(|i| i.contains("cluster_state:ok"))
        })
    }

    fn health(&self) -> Result<(), String> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.ping())
            .map(|n| n.port)
            .collect();
        for port in &live {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut Self::conn(*port))
                .map_err(|e| e.to_string())?;
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return Err(format!("node {port}: {info}"));
            }
            let view = Self::topology(*port);
            let primaries = view.iter().filter(|n| n.primary && !n.failed).count();
            if primaries != 3 {
                return Err(format!("node {port} sees {primaries} primaries"));
            }
        }
        for port in &live {
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query(&mut Self::conn(*port))
                .map_err(|e| e.to_string())?;
            if let Some(redis::Value::BulkString(r)) = role.first() {
                if r == b"slave" {
                    let state = role.get(3);
                    if !matches!(state, Some(redis::Value::BulkString(s)) if s == b"connected") {
                        return Err(format!("replica {port} not in sync: {state:?}"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One cluster shared by the tests of a test binary that overlap in time: the first
/// test starts it, the last one to finish stops it (when no test holds it, the next
/// one starts a fresh cluster). Each test isolates its keys with its own prefix.
pub fn shared() -> Arc<RedisCluster> {
    static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = slot.upgrade() {
        return c;
    }
    let c = Arc::new(RedisCluster::start());
    *slot = Arc::downgrade(&c);
    c
}
