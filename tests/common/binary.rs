//! The built `sessions` binary as a child process on free ports, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Binary {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub log: std::path::PathBuf,
}

impl Binary {
    /// Starts the binary with `env` (on top of free listen ports) and waits until its
    /// Seneca port accepts connections.
    pub fn start(env: &[(&str, &str)]) -> Binary {
        super::needs::check();
        let port = super::free_port();
        let admin_port = super::free_port();
        let log =
            std::env::temp_dir().join(format!("sessions-{}.log", uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessions"));
        cmd.env_remove("REDIS_URL")
            .env("SESSIONS_LISTEN", format!("127.0.0.1:{port}"))
            .env("SESSIONS_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the sessions binary");
        let b = Binary {
            child,
            port,
            admin_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "binary did not listen:\n{}",
                b.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    pub fn seneca_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn admin_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.admin_port).into()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (e.g. "TERM").
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit, up to `wait`; returns its exit code.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<i32> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Starts the binary with `env`, opens a session and reads it back over Seneca, checks
/// `/ready`, then stops it with SIGTERM (exit 0) and returns its log.
pub async fn round_trip_then_stop(env: &[(&str, &str)]) -> String {
    let mut bin = Binary::start(env);
    let mut c = super::seneca::Client::connect(bin.seneca_addr()).await;
    let s = c
        .call(
            serde_json::json!({"role": "sessions", "version": 1, "cmd": "open_session",
                                 "user_id": "u1", "data": {"a": 1}}),
        )
        .await;
    let got = c
        .call(
            serde_json::json!({"role": "sessions", "version": 1, "cmd": "get_session_by_id",
                                 "session_id": s["id"]}),
        )
        .await;
    assert_eq!(got["data"]["a"], 1);
    let (status, _) = super::http::get(bin.admin_addr(), "/ready").await;
    assert_eq!(status, 200);
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(30)), Some(0));
    bin.log_text()
}
