//! HAProxy in TCP mode in front of replicas of the service, as a child process on
//! free loopback ports, killed when dropped. Each replica is checked with
//! `GET /ready` on its admin port; a stats page tells which servers HAProxy counts
//! as up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One backend server: its Seneca port and the admin port its health check uses.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    pub port: u16,
    pub admin_port: u16,
}

pub struct HaProxy {
    child: Child,
    pub port: u16,
    pub stats_port: u16,
    dir: PathBuf,
}

/// The configuration the tests run HAProxy with. Health checks every 200 ms, two
/// failures to mark a server down and two passes to bring it back; a connection
/// that cannot reach a server is retried on another one (`redispatch`).
pub fn config(port: u16, stats_port: u16, backends: &[Backend]) -> String {
    let mut cfg = format!(
        "global
    maxconn 4000
    nbthread 1

defaults
    mode tcp
    timeout connect 1s
    timeout client 5m
    timeout server 5m
    timeout check 1s
    retries 3
    option redispatch 1

frontend seneca
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /ready
    default-server inter 200ms fall 2 rise 2
"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!(
            "    server r{i} 127.0.0.1:{} check port {}\n",
            b.port, b.admin_port
        ));
    }
    cfg.push_str(&format!(
        "
listen stats
    mode http
    bind 127.0.0.1:{stats_port}
    timeout client 5s
    timeout server 5s
    stats enable
    stats uri /stats
"
    ));
    cfg
}

impl HaProxy {
    /// Starts HAProxy in front of `backends` and waits until it accepts
    /// connections. The multi-replica tests need it and never skip: without haproxy
    /// the suite stops with a clear message (`needs`).
    pub fn start(backends: &[Backend]) -> HaProxy {
        super::needs::check();
        let dir = std::env::temp_dir().join(format!(
            "sessions-haproxy-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create haproxy dir");
        let port = super::free_port();
        let stats_port = super::free_port();
        let cfg_path = dir.join("haproxy.cfg");
        std::fs::write(&cfg_path, config(port, stats_port, backends)).expect("write haproxy.cfg");
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refused the test configuration:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-db") // foreground, no daemon
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut h = HaProxy {
            child,
            port,
            stats_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", stats_port)).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited ({status}):\n{}", h.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen:\n{}",
                h.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// The status HAProxy gives each backend server (`UP`, `DOWN`, `UP 1/2`, ...),
    /// in server order, from the stats page's CSV.
    pub fn statuses(&self) -> Vec<String> {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.stats_port)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = "GET /stats;csv HTTP/1.0\r\nHost: localhost\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return Vec::new();
        }
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let Some((head, body)) = raw.split_once("\r\n\r\n") else {
            return Vec::new();
        };
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        let mut lines = body.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            return Vec::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| {
                f.get(px) == Some(&"replicas")
                    && f.get(sv)
                        .is_some_and(|s| *s != "FRONTEND" && *s != "BACKEND")
            })
            .map(|f| f.get(st).unwrap_or(&"").to_string())
            .collect()
    }

    /// Waits (up to `wait`) until every server's status satisfies `want`; returns
    /// whether it happened.
    pub fn wait_statuses(&self, wait: Duration, want: impl Fn(usize, &str) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let st = self.statuses();
            if !st.is_empty() && st.iter().enumerate().all(|(i, s)| want(i, s)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until HAProxy counts every server as up; panics after `wait`.
    pub fn wait_all_up(&self, wait: Duration) {
        assert!(
            self.wait_statuses(wait, |_, s| s == "UP"),
            "HAProxy did not see every replica up: {:?}\n{}",
            self.statuses(),
            self.log_text()
        );
    }
}

/// The body of a chunked HTTP/1.1 response (HAProxy's stats page answers chunked).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        body = after.strip_prefix("\r\n").unwrap_or(after);
    }
    out
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
