//! The real binary as a process: its command line (help listing every setting,
//! version, usage errors that exit 64 before anything is bound), its text logs on a
//! pipe (no colour codes), and its runtime settings (`SESSIONS_WORKER_THREADS` sets
//! how many threads run requests).

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::binary::Binary;
use sessions::cli::{help_entry, EX_USAGE};
use sessions::config::settings;

/// What this suite runs besides the service (see `common::needs`): nothing.
const NEEDS: &[common::needs::Need] = &[];

/// Threads of `pid` with the runtime's thread name (workers, and blocking-pool
/// threads if any were started).
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc of the child")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-r"))
        .count()
}

#[test]
fn worker_threads_follow_the_setting() {
    let four = Binary::start(&[("SESSIONS_WORKER_THREADS", "4")]);
    let one = Binary::start(&[("SESSIONS_WORKER_THREADS", "1")]);
    let (n4, n1) = (
        runtime_threads(four.child.id()),
        runtime_threads(one.child.id()),
    );
    assert!(n4 >= 4, "4 workers asked, {n4} runtime threads");
    assert!(
        n1 < n4,
        "1 worker asked, {n1} runtime threads (4 asked: {n4})"
    );
}

/// The binary with `args` and `env` (on top of an environment without REDIS_URL or
/// NO_COLOR), its stdout and stderr piped.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    common::needs::check();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessions"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start the sessions binary")
}

/// Waits up to 30 s for `child` to exit; a child still running then is killed and
/// fails the test (it was running the service when it should have stopped).
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

/// Runs the binary to its end.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    finish(spawn(args, env), &format!("sessions {args:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_setting_with_its_default() {
    for flag in ["--help", "-h"] {
        let out = run(&[flag], &[]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{help}{}", text(&out.stderr));
        for setting in settings::ALL {
            assert!(
                help.contains(&help_entry(setting)),
                "{flag} does not list {}:\n{help}",
                setting.name
            );
        }
        assert!(help.contains("[default: 0.0.0.0:8807]"), "{help}");
        assert!(help.contains("serve") && help.contains("check"), "{help}");
        assert!(
            !help.contains('\x1b'),
            "styles written to a pipe:\n{help:?}"
        );
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("sessions {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_gets_its_own_arguments() {
    let help = run(&["check", "--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).starts_with("usage: sessions check"));
    let extra = run(&["check", "extra"], &[]);
    assert_eq!(extra.status.code(), Some(2), "the check's own usage error");
    assert!(text(&extra.stderr).contains("unexpected argument \"extra\""));
}

/// With both of the service's ports held here, starting the service fails loudly at
/// its first bind (the control); each usage error instead exits 64 with a usage
/// message and no log line, so it never got as far as a bind, nor as reading the
/// (here invalid) configuration.
#[test]
fn a_usage_error_exits_64_before_binding_anything() {
    let seneca = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let admin = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let (seneca_addr, admin_addr) = (
        seneca.local_addr().unwrap().to_string(),
        admin.local_addr().unwrap().to_string(),
    );
    let env = [
        ("SESSIONS_LISTEN", seneca_addr.as_str()),
        ("SESSIONS_ADMIN_LISTEN", admin_addr.as_str()),
    ];

    let started = run(&[], &env);
    let log = text(&started.stdout) + &text(&started.stderr);
    assert_eq!(started.status.code(), Some(1), "{log}");
    assert!(log.contains("cannot listen on"), "{log}");

    for args in [
        &["--bogus"][..],
        &["serv"],
        &["serve", "--bogus"],
        &["serve", "extra"],
        &["--listen", "127.0.0.1:1"],
    ] {
        let out = run(args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i32::from(EX_USAGE)),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("Usage: sessions"), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} logged: {}",
            text(&out.stdout)
        );
        assert!(!stderr.contains("cannot listen"), "{args:?}: {stderr}");
    }

    let bad_config = [("SESSIONS_MAX_TAKE", "0"), env[0], env[1]];
    assert_eq!(run(&[], &bad_config).status.code(), Some(2), "control");
    assert_eq!(
        run(&["--bogus"], &bad_config).status.code(),
        Some(i32::from(EX_USAGE)),
        "the command line is read before the configuration"
    );
}

/// Text logs written to a pipe (as under docker, systemd or CI) are plain text.
#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", common::free_port());
    let child = spawn(
        &[],
        &[
            ("SESSIONS_LISTEN", &addr),
            ("SESSIONS_ADMIN_LISTEN", &admin),
            ("SESSIONS_LOG_FORMAT", "text"),
            ("SESSIONS_LOG", "info"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    // A connection, for a log line per connection opened and closed.
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the binary did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed, "kill -TERM");
    let out = finish(child, "the service after SIGTERM");
    let log = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for line in [
        "INFO",
        "listening for Seneca clients",
        "connection opened",
        "stopped",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    assert!(!log.contains('\x1b'), "colour codes on a pipe:\n{log:?}");
}
