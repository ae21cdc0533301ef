//! The programs a test suite runs besides the service, checked once per suite before
//! its first test starts one. When any is missing, the suite stops there with one
//! message naming what is missing and the command that installs everything the
//! suites need, instead of each test failing on its own with a spawn error.
//!
//! Each suite lists its needs at its root as `const NEEDS: &[Need]`; the helpers that
//! start a process (redis-server, HAProxy, node, the service binary, the deploy
//! tools) call [`check`] first. The check runs before any process is started, so
//! stopping the suite leaves nothing running behind it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The command that installs what every suite needs (and `./test.sh` runs it before
/// the suites).
pub const PROVISION: &str = "./test.sh --provision";

/// Something a suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `redis-server` (Debian package redis-server).
    RedisServer,
    /// `redis-cli`, which builds the test clusters (Debian package redis-tools).
    RedisCli,
    /// `openssl`, which makes the TLS tests' certificates.
    Openssl,
    /// `node` and `npm`, for the real npm Seneca clients.
    Node,
    /// `promtool` (Debian package prometheus).
    Promtool,
    /// `prometheus` itself (Debian package prometheus).
    Prometheus,
    /// `haproxy`.
    Haproxy,
    /// The deploy checks' Python venv in `.deploy-tools/` (Helm's engine,
    /// kubernetes-validate, Docker Compose, hadolint, shellcheck, PyYAML).
    DeployVenv,
    /// TypeScript and `@grafana/schema` in `ci/grafana-schema/node_modules`.
    GrafanaSchema,
}

impl Need {
    /// Why this need is not met, or `None` when it is.
    fn missing(self) -> Option<String> {
        let on_path = |tool: &str, package: &str| {
            (!program_runs(tool, "--version"))
                .then(|| format!("{tool}: not found on PATH (Debian package {package})"))
        };
        match self {
            Need::RedisServer => on_path("redis-server", "redis-server"),
            Need::RedisCli => on_path("redis-cli", "redis-tools"),
            Need::Openssl => {
                (!program_runs("openssl", "version")).then(|| "openssl: not found on PATH".into())
            }
            Need::Node => on_path("node", "nodejs").or_else(|| on_path("npm", "npm")),
            Need::Promtool => on_path("promtool", "prometheus"),
            Need::Prometheus => on_path("prometheus", "prometheus"),
            Need::Haproxy if program_runs("haproxy", "-v") => None,
            Need::Haproxy if Path::new("/usr/sbin/haproxy").is_file() => Some(
                "haproxy: installed in /usr/sbin, which is not on PATH (./test.sh adds it)".into(),
            ),
            Need::Haproxy => on_path("haproxy", "haproxy"),
            Need::DeployVenv => ["python", "hadolint", "shellcheck", "kubernetes-validate"]
                .iter()
                .map(|bin| deploy_tools_dir().join("venv/bin").join(bin))
                .find(|path| !path.is_file())
                .map(|path| format!("the deploy tools' Python venv: no {}", path.display())),
            Need::GrafanaSchema => {
                let tsc = repo().join("ci/grafana-schema/node_modules/typescript/bin/tsc");
                (!tsc.is_file())
                    .then(|| format!("TypeScript and @grafana/schema: no {}", tsc.display()))
            }
        }
    }
}

/// Stops this suite's process with one message when any of its needs is missing.
/// Runs the check once; later calls return at once.
pub fn check() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let missing: Vec<String> = crate::NEEDS.iter().filter_map(|n| n.missing()).collect();
        if missing.is_empty() {
            return;
        }
        let list: String = missing.iter().map(|m| format!("  - {m}\n")).collect();
        let message = format!(
            "\nThe `{}` test suite cannot run; it needs:\n{list}\n\
             Install what every test suite needs with:\n\n    {PROVISION}\n\n\
             (`./test.sh` installs it and then runs every suite.)\n\n",
            env!("CARGO_CRATE_NAME")
        );
        // Straight to the stderr descriptor: the test harness captures `eprintln!` of
        // a test and would drop it when the process exits here.
        let _ = std::io::stderr().write_all(message.as_bytes());
        // libtest's exit code for failed tests.
        std::process::exit(101);
    });
}

/// Whether `program arg` starts and succeeds.
fn program_runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where `./test.sh --provision` puts the Python tools (`DEPLOY_TOOLS_DIR` overrides
/// it).
pub fn deploy_tools_dir() -> PathBuf {
    std::env::var_os("DEPLOY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".deploy-tools"))
}
