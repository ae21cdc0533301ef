//! The container image definition: hadolint finds nothing in the Dockerfile, shellcheck
//! nothing in the shell scripts, the Dockerfile keeps its contract (non-root user,
//! both ports, the health check script), and the health check script run against a
//! live replica tells live from ready.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::tools;
use crate::Replicas;

#[test]
fn dockerfile_passes_hadolint_and_keeps_its_contract() {
    let repo = tools::repo();
    let out = tools::run(
        Command::new(tools::venv_bin("hadolint"))
            .arg("--no-color")
            .arg(repo.join("Dockerfile")),
    );
    assert!(
        out.status.success() && tools::stdout(&out).trim().is_empty(),
        "hadolint Dockerfile:\n{}",
        tools::report(&out)
    );

    let text = std::fs::read_to_string(repo.join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "a multi-stage build");
    assert!(
        lines.contains(&"EXPOSE 8807 9807"),
        "exposes the Seneca and admin ports"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER instruction");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "runs as a numeric non-root user (Kubernetes runAsNonRoot checks the number): {user}"
    );
    assert!(
        text.contains("deploy/docker/healthcheck.sh /usr/local/bin/sessions-healthcheck\n"),
        "the health check script is in the image where compose expects it"
    );
    assert!(text.contains("HEALTHCHECK"), "a HEALTHCHECK");

    // Everything the build copies is in the build context.
    let ignore = std::fs::read_to_string(repo.join(".dockerignore")).expect(".dockerignore");
    for needed in [
        "src",
        "tests",
        "benches",
        "crates",
        "Cargo.toml",
        "Cargo.lock",
        "deploy",
        "deploy/docker",
    ] {
        assert!(
            !ignore
                .lines()
                .any(|l| l.trim() == needed || l.trim() == format!("{needed}/")),
            ".dockerignore must not exclude {needed}"
        );
    }
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let repo = tools::repo();
    let out = tools::run(
        Command::new(tools::venv_bin("shellcheck"))
            .arg(repo.join("deploy/docker/healthcheck.sh"))
            .arg(repo.join("test.sh"))
            .arg(repo.join(".ci/run")),
    );
    assert!(out.status.success(), "shellcheck:\n{}", tools::report(&out));
}

/// Runs the image's health check script the way the container does, with the admin
/// address in SESSIONS_ADMIN_LISTEN; true when it exits 0.
fn healthcheck(script: &Path, admin: SocketAddr, path: &str) -> bool {
    let out = tools::run(
        Command::new("bash")
            .arg(script)
            .arg(path)
            .env("SESSIONS_ADMIN_LISTEN", format!("0.0.0.0:{}", admin.port())),
    );
    out.status.success()
}

#[test]
fn healthcheck_script_tells_live_from_ready() {
    let script = tools::repo().join("deploy/docker/healthcheck.sh");
    let replicas = Replicas::start(1);
    let admin = replicas.admin(0);
    assert!(
        healthcheck(&script, admin, "/live"),
        "/live on a running replica"
    );
    assert!(
        healthcheck(&script, admin, "/ready"),
        "/ready on a ready replica"
    );

    replicas.apps[0].health.set_draining();
    assert!(
        !healthcheck(&script, admin, "/ready"),
        "/ready fails while draining"
    );
    assert!(
        healthcheck(&script, admin, "/live"),
        "/live holds while draining"
    );

    let closed: SocketAddr = format!("127.0.0.1:{}", crate::common::free_port())
        .parse()
        .expect("addr");
    assert!(
        !healthcheck(&script, closed, "/live"),
        "fails when nothing listens"
    );
    let out = tools::run(
        Command::new("bash")
            .arg(&script)
            .env("SESSIONS_ADMIN_LISTEN", "nonsense"),
    );
    assert_eq!(out.status.code(), Some(2), "a bad address is a usage error");
}
