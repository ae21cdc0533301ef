//! The Prometheus configuration and alert rules: promtool accepts them, the rules use
//! only exported metrics, and a real Prometheus started with the repository's
//! configuration (targets pointed at in-process replicas) scrapes them, evaluates
//! every rule without error, answers the dashboards' queries with data, and raises
//! SessionsReplicaDown for a replica that stops and the store alerts when Redis dies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::dashboards;
use crate::promql;
use crate::tools::{self, Daemon, TempDir};
use crate::Replicas;

const RULES: &str = "deploy/prometheus/rules/sessions.rules.yml";
const CONFIG: &str = "deploy/prometheus/prometheus.yml";

/// Every `expr` of the rules file, by rule name.
fn rule_exprs() -> BTreeMap<String, String> {
    let rules = tools::yaml_file(&tools::repo().join(RULES));
    let mut out = BTreeMap::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert or record name");
            out.insert(
                name.to_string(),
                rule["expr"].as_str().expect("expr").to_string(),
            );
        }
    }
    out
}

#[test]
fn alert_rules_pass_promtool_and_use_exported_metrics() {
    let path = tools::repo().join(RULES);
    let out = tools::run_ok(
        Command::new(tools::on_path("promtool"))
            .args(["check", "rules"])
            .arg(&path),
        "promtool check rules",
    );
    let exprs = rule_exprs();
    assert!(
        tools::stdout(&out).contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{}",
        tools::report(&out)
    );
    for alert in [
        "SessionsUnavailable",
        "SessionsStoreDown",
        "SessionsHighErrorRatio",
        "SessionsHighLatencyP99",
        "SessionsRedisErrors",
    ] {
        assert!(exprs.contains_key(alert), "the rules have {alert}");
    }

    let replicas = Replicas::start(1);
    let exported = promql::exported_names(&replicas.scrape(0));
    let unknown = promql::unknown_names(exprs.values(), &exported);
    assert!(
        unknown.is_empty(),
        "rules use metrics the service does not export: {unknown:#?}"
    );
}

/// Prometheus's HTTP API: the `data` of a successful answer.
fn api(addr: SocketAddr, path: &str) -> Value {
    let (status, body) =
        tools::http_get(addr, path).unwrap_or_else(|| panic!("Prometheus answers {path}"));
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    assert_eq!(
        (status, &v["status"]),
        (200, &Value::from("success")),
        "{path}: {body}"
    );
    v["data"].clone()
}

fn query(addr: SocketAddr, q: &str) -> Vec<Value> {
    let data = api(
        addr,
        &format!("/api/v1/query?query={}", tools::urlencode(q)),
    );
    data["result"].as_array().cloned().unwrap_or_default()
}

/// The repository's configuration with the replicas' admin addresses as targets,
/// 1 s intervals so the test is quick, and the rules read from the repository.
fn test_config(replicas: &Replicas) -> String {
    let mut text = std::fs::read_to_string(tools::repo().join(CONFIG)).expect("read config");
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("scrape_timeout: 5s", "scrape_timeout: 1s"),
    ] {
        text = tools::replace_required(&text, from, to, CONFIG);
    }
    let rules_dir = tools::repo().join("deploy/prometheus/rules/");
    text = tools::replace_required(
        &text,
        "/etc/prometheus/rules/",
        rules_dir.to_str().expect("utf-8 path"),
        CONFIG,
    );
    for (i, app) in replicas.apps.iter().enumerate() {
        let target = format!("sessions-{}:9807", i + 1);
        text = tools::replace_required(&text, &target, &app.admin_addr.to_string(), CONFIG);
    }
    text
}

#[test]
fn prometheus_scrapes_replicas_with_the_repository_config() {
    let mut replicas = Replicas::start(3);
    let dir = TempDir::new("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, test_config(&replicas)).expect("write config");
    tools::run_ok(
        Command::new(tools::on_path("promtool"))
            .args(["check", "config"])
            .arg(&config),
        "promtool check config (repository config, test targets)",
    );

    let addr: SocketAddr = format!("127.0.0.1:{}", crate::common::free_port())
        .parse()
        .expect("addr");
    let mut prom = Daemon::start(
        "prometheus",
        Command::new(tools::on_path("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn"),
        dir.join("prometheus.log"),
    );
    let ready = tools::poll(Duration::from_secs(30), || {
        (tools::http_get(addr, "/-/ready")?.0 == 200).then_some(())
    });
    assert!(
        ready.is_some(),
        "Prometheus not ready in 30 s\n{}",
        prom.log()
    );

    // Every replica scraped, and at least three samples each so rates have data.
    let scraped = tools::poll(Duration::from_secs(30), || {
        let r = query(addr, "count_over_time(sessions_build_info[1m]) >= 3");
        (r.len() == 3).then_some(())
    });
    assert!(
        scraped.is_some(),
        "three replicas not scraped three times in 30 s\n{}",
        prom.log()
    );

    let info = query(addr, "sessions_build_info");
    assert_eq!(
        info.len(),
        3,
        "one sessions_build_info per replica: {info:?}"
    );
    for s in &info {
        assert_eq!(s["metric"]["job"], "sessions");
        assert_eq!(s["metric"]["version"], env!("CARGO_PKG_VERSION"));
    }
    let opened = query(
        addr,
        r#"sum(sessions_sessions_opened_total{job="sessions"})"#,
    );
    assert_eq!(
        opened[0]["value"][1], "3",
        "one session opened per replica: {opened:?}"
    );

    // The rules are loaded from the repository and every one evaluates cleanly; on
    // healthy replicas none is pending or firing.
    let want = rule_exprs();
    let evaluated = tools::poll(Duration::from_secs(30), || {
        let data = api(addr, "/api/v1/rules");
        let rules: Vec<Value> = data["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let all_ok = rules.len() == want.len()
            && rules.iter().all(|r| {
                r["health"] == "ok"
                    && !r["lastEvaluation"]
                        .as_str()
                        .unwrap_or("0001")
                        .starts_with("0001")
            });
        all_ok.then_some(rules)
    });
    let rules = evaluated.unwrap_or_else(|| {
        panic!(
            "not every rule of {RULES} evaluated healthy in 30 s: {}\n{}",
            api(addr, "/api/v1/rules"),
            prom.log()
        )
    });
    for r in &rules {
        assert_eq!(r["state"], "inactive", "on healthy replicas: {r}");
    }

    // Every dashboard query runs and returns data.
    for d in dashboards::load() {
        for e in dashboards::expressions(&d.json) {
            let q = promql::substitute_grafana_vars(&e);
            let result = query(addr, &q);
            assert!(
                !result.is_empty(),
                "{}: {q:?} returns no data from three scraped replicas",
                d.file.display()
            );
        }
    }

    // A replica that stops answering scrapes raises SessionsReplicaDown (pending:
    // its `for` is minutes) for that replica only.
    let app = replicas.apps.remove(2);
    let stopped = app.admin_addr.to_string();
    app.shutdown();
    assert!(replicas.block_on(app.wait()), "the stopped replica drained");
    assert!(
        tools::http_get(stopped.parse().expect("addr"), "/live").is_none(),
        "admin port closed"
    );
    let mut pending = |wanted: &[&str]| {
        tools::poll(Duration::from_secs(30), || {
            let alerts = api(addr, "/api/v1/alerts")["alerts"].as_array()?.clone();
            let got: Vec<(String, String)> = alerts
                .iter()
                .map(|a| {
                    let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_string();
                    (label("alertname"), label("instance"))
                })
                .collect();
            wanted
                .iter()
                .all(|w| got.iter().any(|(name, _)| name == w))
                .then_some((alerts, got))
        })
        .unwrap_or_else(|| {
            panic!(
                "alerts {wanted:?} not raised: {}\n{}",
                api(addr, "/api/v1/alerts"),
                prom.log()
            )
        })
    };
    let (alerts, _) = pending(&["SessionsReplicaDown"]);
    let down: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "SessionsReplicaDown")
        .collect();
    assert_eq!(down.len(), 1, "only the stopped replica: {down:?}");
    assert_eq!(down[0]["labels"]["instance"], stopped.as_str());
    // Pending: the rule's `for` is minutes.
    assert_eq!(down[0]["state"], "pending");

    // Redis dies: every replica reports its store down, and no replica can serve.
    replicas.redis.kill();
    let (_, got) = pending(&["SessionsStoreDown", "SessionsUnavailable"]);
    let store_down: Vec<&String> = got
        .iter()
        .filter(|(name, _)| name == "SessionsStoreDown")
        .map(|(_, instance)| instance)
        .collect();
    assert_eq!(store_down.len(), 2, "both running replicas: {got:?}");
}
