//! Several replicas of the built binary on one Redis and key prefix, the blocking
//! admin-port probes the multi-replica tests poll, and `sessions check` as a child
//! process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::binary::Binary;
use super::haproxy::Backend;

/// Replicas sharing one Redis and prefix. A killed replica stays in its slot (its
/// log is kept for failure messages) until the fleet is dropped.
pub struct Fleet {
    pub replicas: Vec<Binary>,
}

impl Fleet {
    /// Starts `n` replicas on `redis_url` / `prefix` with `extra` settings and waits
    /// until each one reports ready.
    pub fn start(n: usize, redis_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Fleet {
        let mut env: Vec<(&str, &str)> =
            vec![("REDIS_URL", redis_url), ("SESSIONS_KEY_PREFIX", prefix)];
        env.extend_from_slice(extra);
        let replicas: Vec<Binary> = (0..n).map(|_| Binary::start(&env)).collect();
        let fleet = Fleet { replicas };
        for i in 0..n {
            assert!(
                fleet.wait_ready(i, 200, Duration::from_secs(20)),
                "replica {i} did not become ready:\n{}",
                fleet.replicas[i].log_text()
            );
        }
        fleet
    }

    pub fn backends(&self) -> Vec<Backend> {
        self.replicas
            .iter()
            .map(|b| Backend {
                port: b.port,
                admin_port: b.admin_port,
            })
            .collect()
    }

    /// `GET /ready` of replica `i`: the status, or None when it does not answer.
    pub fn ready_status(&self, i: usize) -> Option<u16> {
        http_get(self.replicas[i].admin_port, "/ready").map(|(s, _)| s)
    }

    /// Waits (up to `wait`) until replica `i`'s `/ready` answers `status`.
    pub fn wait_ready(&self, i: usize, status: u16, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.ready_status(i) == Some(status) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs replica `i` and reaps it.
    pub fn kill9(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        r.child.kill().expect("kill -9 the replica");
        let _ = r.child.wait();
    }

    /// True while replica `i`'s process has not exited.
    pub fn alive(&mut self, i: usize) -> bool {
        matches!(self.replicas[i].child.try_wait(), Ok(None))
    }

    /// The value of one metric series (e.g. `sessions_store_up`, or with labels as
    /// rendered) on replica `i`, or None when absent or unreachable.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let (_, body) = http_get(self.replicas[i].admin_port, "/metrics")?;
        sample(&body, series)
    }

    /// The logs of every replica, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let text = r.log_text();
            let tail = text.len().saturating_sub(8000);
            let tail = (tail..text.len())
                .find(|&k| text.is_char_boundary(k))
                .unwrap_or(text.len());
            s.push_str(&format!("--- replica {i} ---\n{}\n", &text[tail..]));
        }
        s
    }
}

/// The value of `series` in a Prometheus text body.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A blocking HTTP/1.0 GET on a loopback port: (status, body), None when it fails.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// What `sessions check` printed and how it exited.
#[derive(Debug)]
pub struct CheckRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sessions check` on `redis_url` / `prefix`.
pub fn run_check(redis_url: &str, prefix: &str) -> CheckRun {
    run_check_with(&[("REDIS_URL", redis_url), ("SESSIONS_KEY_PREFIX", prefix)])
}

/// The settings `sessions check` reads for Redis, none inherited from the test run.
const CHECK_SETTINGS: &[&str] = &[
    "REDIS_URL",
    "SESSIONS_KEY_PREFIX",
    "SESSIONS_REDIS_MODE",
    "SESSIONS_REDIS_SENTINEL_MASTER",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD",
    "SESSIONS_REDIS_CA_FILE",
    "SESSIONS_REDIS_CLIENT_CERT_FILE",
    "SESSIONS_REDIS_CLIENT_KEY_FILE",
];

/// Runs `sessions check` with exactly `env` as its Redis settings.
pub fn run_check_with(env: &[(&str, &str)]) -> CheckRun {
    super::needs::check();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessions"));
    cmd.arg("check").stdin(Stdio::null());
    for name in CHECK_SETTINGS {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sessions check");
    CheckRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the checker and asserts it found the dataset clean.
pub fn assert_consistent(redis_url: &str, prefix: &str) -> CheckRun {
    assert_consistent_with(&[("REDIS_URL", redis_url), ("SESSIONS_KEY_PREFIX", prefix)])
}

/// Runs the checker with `env` (a cluster or Sentinel configuration) and asserts it
/// found the dataset clean.
pub fn assert_consistent_with(env: &[(&str, &str)]) -> CheckRun {
    let run = run_check_with(env);
    println!("sessions check:\n{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.code,
        Some(0),
        "sessions check found problems or failed:\n{}{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("OK: no problems found"),
        "{}",
        run.stdout
    );
    run
}
