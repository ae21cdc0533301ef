//! Protocol compatibility with real, unmodified npm Seneca clients.
//!
//! Each test starts the built `sessions` binary (embedded store, a throwaway
//! redis-server, or a throwaway Redis Cluster of three primaries with a replica
//! each) with a per-user cap of [`MAX_PER_USER`] sessions (policy `refuse`, so the
//! scenario sees SESSION_LIMIT), then runs `tests/compat/drive.js` with one client
//! generation:
//! `v8` (seneca 3.38.0 + seneca-transport 8.3.0, the latest) and `v2` (seneca 3.6.0 +
//! seneca-transport 2.4.0, 2017). The script carries the assertions for every command
//! and prints `N passed, N failed`; this test asserts it ran and nothing failed.
//!
//! Needs node and npm on PATH: the client installs come from the committed
//! `package-lock.json` files with `npm ci` when `node_modules` is missing. There is no
//! silent skip: without node the tests fail and say why.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::node::{client_dir, compat_dir};
use common::redis_cluster;
use common::redis_server::RedisServer;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] =
    &[common::needs::Need::RedisServer, common::needs::Need::Node];

/// The service's SESSIONS_MAX_PER_USER in these tests: above what any other section of
/// the scenario opens for one user, so only the cap section meets it.
const MAX_PER_USER: u32 = 6;

/// The `sessions` binary under test, killed when dropped.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Service {
    /// Starts the service on free loopback ports; `redis` = (url, key prefix), or
    /// `None` for the embedded store.
    fn start(redis: Option<(&str, &str)>) -> Self {
        Self::start_with(redis, &[])
    }

    /// [`Service::start`] with more environment variables (the Redis topology).
    fn start_with(redis: Option<(&str, &str)>, env: &[(&str, &str)]) -> Self {
        common::needs::check();
        let port = common::free_port();
        let admin = common::free_port();
        let log = std::env::temp_dir().join(format!(
            "sessions-compat-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let log_file = std::fs::File::create(&log).expect("create server log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessions"));
        cmd.env("SESSIONS_LISTEN", format!("127.0.0.1:{port}"))
            .env("SESSIONS_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("SESSIONS_MAX_PER_USER", MAX_PER_USER.to_string())
            .env("SESSIONS_MAX_PER_USER_POLICY", "refuse")
            .env_remove("REDIS_URL")
            .env_remove("SESSIONS_KEY_PREFIX")
            .env_remove("SESSIONS_REDIS_MODE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file"))
            .stderr(log_file);
        if let Some((url, prefix)) = redis {
            cmd.env("REDIS_URL", url).env("SESSIONS_KEY_PREFIX", prefix);
        }
        let child = cmd.spawn().expect("start the sessions binary");
        let mut service = Service { child, port, log };
        service.wait_listening();
        service
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sessions exited before listening ({status}); its log:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sessions did not accept connections on 127.0.0.1:{} within 30 s; its log:\n{}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        // The end of the log is what explains a failure.
        let start = s.len().saturating_sub(20_000);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].to_string()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs the scenario with one client generation against `service` and asserts that it
/// ran checks and none failed.
fn drive(generation: &str, service: &Service) {
    let dir = client_dir(generation);
    let script = compat_dir().join("drive.js");
    let out: Output = Command::new("node")
        .arg(&script)
        .arg(&dir)
        .arg("127.0.0.1")
        .arg(service.port.to_string())
        .arg(MAX_PER_USER.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run node tests/compat/drive.js");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown by the test harness when the test fails.
    println!("{stdout}");
    eprintln!("{stderr}");
    let summary = stdout
        .lines()
        .rev()
        .find_map(parse_summary)
        .unwrap_or_else(|| {
            panic!("drive.js printed no `N passed, N failed` line; stderr:\n{stderr}")
        });
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        out.status.success() && summary.1 == 0,
        "{generation} client: {} passed, {} failed (exit {}):\n{}\n--- server log ---\n{}",
        summary.0,
        summary.1,
        out.status,
        failures.join("\n"),
        service.log_text()
    );
    // A scenario that silently ran nothing must not count as a pass.
    assert!(
        summary.0 >= 100,
        "{generation} client: only {} checks ran",
        summary.0
    );
}

/// Parses `N passed, N failed`.
fn parse_summary(line: &str) -> Option<(u32, u32)> {
    let (p, f) = line.trim().split_once(" passed, ")?;
    let f = f.strip_suffix(" failed")?;
    Some((p.parse().ok()?, f.parse().ok()?))
}

fn with_embedded(generation: &str) {
    let service = Service::start(None);
    drive(generation, &service);
}

fn with_redis(generation: &str) {
    let redis = RedisServer::start();
    let prefix = common::unique_prefix(&format!("compat-{generation}"));
    let service = Service::start(Some((&redis.url(), &prefix)));
    drive(generation, &service);
}

fn with_cluster(generation: &str) {
    let cluster = redis_cluster::shared();
    let prefix = common::unique_prefix(&format!("compat-cluster-{generation}"));
    let service = Service::start_with(
        Some((&cluster.urls(), &prefix)),
        &[("SESSIONS_REDIS_MODE", "cluster")],
    );
    drive(generation, &service);
}

#[test]
fn seneca_3_38_transport_8_embedded_store() {
    with_embedded("v8");
}

#[test]
fn seneca_3_6_transport_2_embedded_store() {
    with_embedded("v2");
}

#[test]
fn seneca_3_38_transport_8_redis_store() {
    with_redis("v8");
}

#[test]
fn seneca_3_6_transport_2_redis_store() {
    with_redis("v2");
}

#[test]
fn seneca_3_38_transport_8_redis_cluster() {
    with_cluster("v8");
}

#[test]
fn seneca_3_6_transport_2_redis_cluster() {
    with_cluster("v2");
}

#[test]
fn summary_line_parses() {
    assert_eq!(parse_summary("221 passed, 0 failed"), Some((221, 0)));
    assert_eq!(parse_summary("3 passed, 2 failed\n"), Some((3, 2)));
    assert_eq!(parse_summary("ok - 3 passed, x failed"), None);
}
