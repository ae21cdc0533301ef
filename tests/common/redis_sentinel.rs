//! A throwaway Sentinel deployment on loopback: a primary and a replica (both
//! password-protected) watched by three password-protected sentinels
//! (`redis-server <conf> --sentinel`). Every process is killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;

pub const MASTER: &str = "sessions-primary";
pub const DATA_PASSWORD: &str = "data-pw-4f1c9e";
pub const SENTINEL_PASSWORD: &str = "sentinel-pw-7b2d0a";

/// One sentinel process.
pub struct SentinelProcess {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct SentinelSetup {
    /// The data nodes; which one is primary changes with failovers.
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<SentinelProcess>,
}

/// A synchronous connection to a password-protected node or sentinel.
pub fn conn(port: u16, password: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}/"))
        .expect("redis client");
    let c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    c
}

/// Sets the password of a node started without one (so its start-up PING worked).
fn protect(node: &RedisServer) {
    assert_eq!(
        node.command(&format!("CONFIG SET masterauth {DATA_PASSWORD}")),
        "+OK"
    );
    assert_eq!(
        node.command(&format!("CONFIG SET requirepass {DATA_PASSWORD}")),
        "+OK"
    );
}

impl SentinelSetup {
    /// Starts the primary, its replica and three sentinels, and waits until the
    /// replica is in sync and every sentinel knows the replica and the others.
    pub fn start() -> SentinelSetup {
        let primary = RedisServer::start();
        protect(&primary);
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
            "--masterauth",
            DATA_PASSWORD,
        ]);
        protect(&replica);
        let sentinels = (0..3).map(|_| spawn_sentinel(primary.port)).collect();
        let s = SentinelSetup {
            nodes: vec![primary, replica],
            sentinels,
        };
        s.wait_ready(Duration::from_secs(30));
        s
    }

    /// `REDIS_URL` for sentinel mode: every sentinel, with its password.
    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary's port according to the first live sentinel.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut c = conn(s.port, SENTINEL_PASSWORD);
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER)
                .query(&mut c)
                .ok()?;
            addr.map(|(_, p)| p)
        })
    }

    /// Whether the node on `port` says it is a primary.
    pub fn is_primary(port: u16) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://:{DATA_PASSWORD}@127.0.0.1:{port}/"))
        else {
            return false;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
            return false;
        };
        let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query(&mut c);
        matches!(role.ok().and_then(|r| r.into_iter().next()),
            Some(redis::Value::BulkString(b)) if b == b"master")
    }

    /// Asks a sentinel to fail over now (`SENTINEL FAILOVER`).
    pub fn failover(&self) {
        let mut c = conn(self.sentinels[0].port, SENTINEL_PASSWORD);
        let r: String = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER)
            .query(&mut c)
            .expect("SENTINEL FAILOVER");
        assert_eq!(r, "OK");
    }

    /// Kills (SIGKILL) the data node on `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port == port) {
            n.kill();
        }
    }

    /// Waits until a failover is complete: every sentinel names the same primary, it
    /// says it is one, and every other live node replicates from it in sync.
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.readiness() {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => {
                    panic!("the Sentinel setup did not become ready: {why}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn readiness(&self) -> Result<(), String> {
        let primary = self.primary_port().ok_or("no sentinel answers")?;
        if !Self::is_primary(primary) {
            return Err(format!("{primary} is not primary yet"));
        }
        for s in &self.sentinels {
            let mut c = conn(s.port, SENTINEL_PASSWORD);
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(MASTER)
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            if addr.map(|(_, p)| p) != Some(primary) {
                return Err(format!("sentinel {} names another primary", s.port));
            }
            let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("sentinels")
                .arg(MASTER)
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            if others.len() != self.sentinels.len() - 1 {
                return Err(format!("sentinel {} knows {} others", s.port, others.len()));
            }
            let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(MASTER)
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            if replicas.is_empty() {
                return Err(format!("sentinel {} knows no replica", s.port));
            }
        }
        for n in &self.nodes {
            if n.port == primary || !listening(n.port) {
                continue;
            }
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn(n.port, DATA_PASSWORD))
                .map_err(|e| e.to_string())?;
            let follows = info.contains(&format!("master_port:{primary}"))
                && info.contains("master_link_status:up");
            if !follows {
                return Err(format!("{} does not replicate from {primary} yet", n.port));
            }
        }
        Ok(())
    }
}

/// One Sentinel deployment shared by the tests of a test binary that overlap in time
/// (as `redis_cluster::shared`): the first test starts it, the last one to finish
/// stops it. Each test isolates its keys with its own prefix; none may fail it over.
pub fn shared() -> Arc<SentinelSetup> {
    static SHARED: Mutex<Weak<SentinelSetup>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(SentinelSetup::start());
    *slot = Arc::downgrade(&s);
    s
}

/// Whether something listens on `port` (a password-protected node answers PING with
/// NOAUTH, so PING cannot tell).
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn spawn_sentinel(primary_port: u16) -> SentinelProcess {
    let port = super::free_port();
    let dir = std::env::temp_dir().join(format!(
        "sessions-sentinel-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("sentinel dir");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             dir {dir}\n\
             sentinel resolve-hostnames no\n\
             sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
             sentinel auth-pass {MASTER} {DATA_PASSWORD}\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 1\n\
             requirepass {SENTINEL_PASSWORD}\n\
             sentinel sentinel-pass {SENTINEL_PASSWORD}\n",
            dir = dir.display()
        ),
    )
    .expect("sentinel.conf");
    super::needs::check();
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server --sentinel");
    let s = SentinelProcess { port, dir, child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sentinel {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}
