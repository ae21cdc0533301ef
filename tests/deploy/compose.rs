//! docker-compose.yml through the real Docker Compose v2 binary (`config`): it is
//! valid, and the resolved model has what the stack needs — pinned images, health
//! checks gating start order, Redis configured for sessions, three replicas behind
//! HAProxy and scraped by Prometheus, the mounted files present.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::tools::{self, TempDir};

const REPLICAS: [&str; 3] = ["sessions-1", "sessions-2", "sessions-3"];

fn compose_config(file: &std::path::Path, args: &[&str]) -> std::process::Output {
    tools::run(
        Command::new(tools::compose())
            .arg("--project-directory")
            .arg(tools::repo())
            .arg("-f")
            .arg(file)
            .arg("config")
            .args(args)
            // Never reach for a Docker engine: `config` needs none.
            .env("DOCKER_HOST", "unix:///nonexistent.sock"),
    )
}

fn seconds(duration: &str) -> u64 {
    let (n, unit) = duration.split_at(duration.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("duration {duration}"));
    match unit {
        "s" => n,
        "m" => n * 60,
        _ => panic!("unit of {duration}"),
    }
}

#[test]
fn compose_file_is_valid_and_complete() {
    let repo = tools::repo();
    let file = repo.join("docker-compose.yml");

    // The binary really validates (unlike the package's wrapper script).
    let dir = TempDir::new("compose");
    let broken = dir.join("broken.yml");
    std::fs::write(&broken, "services:\n  a:\n    image: x\n    ports: 12\n").expect("write");
    let out = compose_config(&broken, &["-q"]);
    assert!(
        !out.status.success(),
        "compose accepts a broken file:\n{}",
        tools::report(&out)
    );

    let out = compose_config(&file, &["-q"]);
    assert!(
        out.status.success() && tools::stdout(&out).trim().is_empty(),
        "docker compose config -q:\n{}",
        tools::report(&out)
    );
    let out = compose_config(&file, &["--format", "json"]);
    assert!(out.status.success(), "{}", tools::report(&out));
    let model: Value = serde_json::from_slice(&out.stdout).expect("compose JSON");
    let services = model["services"].as_object().expect("services");

    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = ["redis", "haproxy", "prometheus", "grafana"]
        .into_iter()
        .chain(REPLICAS)
        .collect();
    assert_eq!(names, want, "the services of the stack");

    for (name, s) in services {
        let image = s["image"].as_str().unwrap_or_default();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{name}: image {image:?} has a pinned tag"
        );
        assert!(
            s["healthcheck"]["test"].is_array(),
            "{name}: a health check"
        );
    }

    let redis = &services["redis"];
    let cmd: Vec<&str> = redis["command"]
        .as_array()
        .expect("redis command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for pair in [
        ["--appendonly", "yes"],
        ["--appendfsync", "everysec"],
        ["--maxmemory-policy", "noeviction"],
    ] {
        assert!(
            cmd.windows(2).any(|w| w == pair),
            "redis {pair:?} in {cmd:?}"
        );
    }

    let dockerfile = std::fs::read_to_string(repo.join("Dockerfile")).expect("Dockerfile");
    for name in REPLICAS {
        let s = &services[name];
        assert!(
            s["build"]["context"].is_string(),
            "{name}: built from the Dockerfile"
        );
        assert!(
            s["environment"]["REDIS_URL"]
                .as_str()
                .is_some_and(|u| u.starts_with("redis://redis:")),
            "{name}: REDIS_URL points at the redis service"
        );
        assert_eq!(
            s["depends_on"]["redis"]["condition"], "service_healthy",
            "{name}"
        );
        let test = s["healthcheck"]["test"].as_array().expect("test");
        let script = test[1].as_str().expect("script path");
        assert!(
            dockerfile.contains(&format!(" {script}\n")),
            "{name}: health check script {script} is where the Dockerfile puts it"
        );
        let grace = seconds(s["stop_grace_period"].as_str().expect("stop_grace_period"));
        assert!(
            grace > 20,
            "{name}: stop_grace_period longer than SESSIONS_SHUTDOWN_GRACE"
        );
    }
    for name in ["haproxy", "prometheus"] {
        for r in REPLICAS {
            assert_eq!(
                services[name]["depends_on"][r]["condition"], "service_healthy",
                "{name} waits for {r}"
            );
        }
    }
    assert_eq!(
        services["grafana"]["depends_on"]["prometheus"]["condition"],
        "service_healthy"
    );

    let published = |name: &str| -> Vec<(String, u64)> {
        services[name]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["published"].as_str().unwrap_or_default().to_string(),
                    p["target"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    assert!(
        published("haproxy").contains(&("8807".into(), 8807)),
        "Seneca on 8807"
    );
    assert!(
        published("grafana").contains(&("3000".into(), 3000)),
        "Grafana on 3000"
    );
    assert!(
        published("prometheus").contains(&("9090".into(), 9090)),
        "Prometheus on 9090"
    );

    // Every file or directory mounted from the repository exists.
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            if v["type"] == "bind" {
                let source = v["source"].as_str().expect("bind source");
                assert!(
                    std::path::Path::new(source).exists(),
                    "{name} mounts {source}, which does not exist"
                );
            }
        }
    }

    // HAProxy and Prometheus name exactly the compose replicas.
    let haproxy = std::fs::read_to_string(repo.join("deploy/haproxy/haproxy.cfg")).expect("cfg");
    let prometheus =
        std::fs::read_to_string(repo.join("deploy/prometheus/prometheus.yml")).expect("yml");
    for r in REPLICAS {
        assert!(
            haproxy.contains(&format!("server {r} {r}:8807")),
            "haproxy has {r}"
        );
        assert!(
            prometheus.contains(&format!("- {r}:9807")),
            "prometheus scrapes {r}"
        );
    }
}
