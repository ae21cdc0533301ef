//! The HAProxy configuration: `haproxy -c` accepts it, and a real HAProxy running it
//! (servers and binds pointed at in-process replicas and free loopback ports) carries
//! Seneca calls to the replicas, marks them up through their admin /ready, and takes
//! a draining replica out.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::seneca::Client;
use crate::tools::{self, Daemon, TempDir};
use crate::Replicas;

const CONFIG: &str = "deploy/haproxy/haproxy.cfg";

fn loopback(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().expect("addr")
}

/// Server states from the stats page's CSV: server name → status (UP, DOWN, …).
fn server_states(stats: SocketAddr) -> Option<Vec<(String, String)>> {
    let (status, body) = tools::http_get(stats, "/stats;csv")?;
    if status != 200 {
        return None;
    }
    let mut lines = body.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
    Some(
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > st && f[px] == "sessions" && f[sv].starts_with("sessions-"))
            .map(|f| (f[sv].to_string(), f[st].to_string()))
            .collect(),
    )
}

#[test]
fn haproxy_balances_over_ready_replicas() {
    let haproxy = tools::on_path("haproxy");
    let repo_config = tools::repo().join(CONFIG);
    // The committed file as it is: valid (its server names resolve only in compose,
    // which `init-addr ... none` allows).
    tools::run_ok(
        Command::new(&haproxy).arg("-c").arg("-f").arg(&repo_config),
        "haproxy -c on the repository configuration",
    );

    let replicas = Replicas::start(3);
    let seneca = loopback(crate::common::free_port());
    let stats = loopback(crate::common::free_port());
    let mut text = std::fs::read_to_string(&repo_config).expect("read config");
    text = tools::replace_required(&text, "bind :8807", &format!("bind {seneca}"), CONFIG);
    text = tools::replace_required(&text, "bind :8404", &format!("bind {stats}"), CONFIG);
    // Within the test process's file limit (the compose service raises its own).
    text = tools::replace_required(&text, "maxconn 20000", "maxconn 1000", CONFIG);
    // Quicker checks than production's 2 s, so the test waits less.
    text = tools::replace_required(&text, "inter 2s", "inter 200ms", CONFIG);
    for i in 0..3 {
        let name = format!("sessions-{}", i + 1);
        text = tools::replace_required(
            &text,
            &format!("server {name} {name}:8807"),
            &format!(
                "server {name} {} port {}",
                replicas.seneca(i),
                replicas.admin(i).port()
            ),
            CONFIG,
        );
    }
    let dir = TempDir::new("haproxy");
    let config = dir.join("haproxy.cfg");
    std::fs::write(&config, &text).expect("write config");
    let check = tools::run_ok(
        Command::new(&haproxy).arg("-c").arg("-f").arg(&config),
        "haproxy -c on the test configuration",
    );
    let said = tools::report(&check);
    assert!(
        !said.contains("[WARNING]") && !said.contains("[ALERT]"),
        "haproxy -c warns about the configuration:\n{said}"
    );

    let mut proxy = Daemon::start(
        "haproxy",
        Command::new(&haproxy).arg("-db").arg("-f").arg(&config),
        dir.join("haproxy.log"),
    );
    let all_up = tools::poll(Duration::from_secs(20), || {
        let states = server_states(stats)?;
        (states.len() == 3 && states.iter().all(|(_, s)| s == "UP")).then_some(states)
    });
    assert!(
        all_up.is_some(),
        "HAProxy did not mark the three replicas UP: {:?}\n{}",
        server_states(stats),
        proxy.log()
    );

    // A Seneca conversation through the proxy.
    replicas.block_on(async {
        let mut c = Client::connect(seneca).await;
        let s = c
            .call(json!({"cmd": "open_session", "user_id": "through-haproxy"}))
            .await;
        let got = c
            .call(json!({"cmd": "get_session_by_id", "session_id": s["id"]}))
            .await;
        assert_eq!(got["user_id"], "through-haproxy");
    });

    // A draining replica answers /ready with 503: HAProxy takes it out.
    replicas.apps[1].health.set_draining();
    let down = tools::poll(Duration::from_secs(20), || {
        let states = server_states(stats)?;
        let state = |n: &str| {
            states
                .iter()
                .find(|(s, _)| s == n)
                .map(|(_, st)| st.clone())
        };
        (state("sessions-2")?.starts_with("DOWN")
            && state("sessions-1")? == "UP"
            && state("sessions-3")? == "UP")
            .then_some(())
    });
    assert!(
        down.is_some(),
        "HAProxy did not take the draining replica out: {:?}\n{}",
        server_states(stats),
        proxy.log()
    );
    // New connections go to the others only.
    let opened = |i: usize| {
        replicas
            .scrape(i)
            .lines()
            .find_map(|l| l.strip_prefix("sessions_sessions_opened_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("sessions_sessions_opened_total")
    };
    let before: Vec<f64> = (0..3).map(opened).collect();
    replicas.block_on(async {
        for i in 0..4 {
            let mut c = Client::connect(seneca).await;
            c.call(json!({"cmd": "open_session", "user_id": format!("after-drain-{i}")}))
                .await;
        }
    });
    let after: Vec<f64> = (0..3).map(opened).collect();
    assert_eq!(
        after[1], before[1],
        "the draining replica got no new connection"
    );
    assert_eq!(
        after[0] + after[2],
        before[0] + before[2] + 4.0,
        "the ready replicas took the four new connections"
    );
}
