//! Node.js and the pinned npm Seneca clients of `tests/compat/<generation>`, for tests
//! that drive the service through real clients. No silent skip: without node or npm
//! the suite stops and says why (`needs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Serialises `npm ci` into one folder between tests of one binary.
static NPM_INSTALL: Mutex<()> = Mutex::new(());

pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("compat")
}

/// The client folder of a generation (`v8`, ...), its node_modules installed from
/// the committed lock file when missing or older than the lock.
pub fn client_dir(generation: &str) -> PathBuf {
    let dir = compat_dir().join(generation);
    super::needs::check();
    let _guard = NPM_INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let installed = dir.join("node_modules").join(".package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (
        modified(&installed),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(done), Some(lock)) => lock > done,
        _ => true,
    };
    if stale {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run npm ci in {}: {e}", dir.display()));
        assert!(
            out.status.success(),
            "npm ci in {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// What a script printed: its `N passed, N failed` counts and its output.
#[derive(Debug)]
pub struct ScriptRun {
    pub passed: u32,
    pub failed: u32,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `node tests/compat/<script> <args...>` and parses its summary line. Panics
/// when the script printed no summary.
pub fn run_script(script: &str, args: &[String]) -> ScriptRun {
    super::needs::check();
    let out = Command::new("node")
        .arg(compat_dir().join(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (passed, failed) = stdout
        .lines()
        .rev()
        .find_map(parse_summary)
        .unwrap_or_else(|| {
            panic!("{script} printed no `N passed, N failed` line:\n{stdout}\n{stderr}")
        });
    ScriptRun {
        passed,
        failed,
        success: out.status.success(),
        stdout,
        stderr,
    }
}

/// Parses `N passed, N failed`.
pub fn parse_summary(line: &str) -> Option<(u32, u32)> {
    let (p, f) = line.trim().split_once(" passed, ")?;
    let f = f.strip_suffix(" failed")?;
    Some((p.parse().ok()?, f.parse().ok()?))
}
