//! The Grafana dashboards and their provisioning: every query parses (promtool), uses
//! only metrics the service exports, follows the dashboard conventions (fixed uid,
//! `${datasource}`, `$__rate_interval`, `max` for store-wide gauges), and every
//! dashboard type-checks against Grafana's schema (@grafana/schema with tsc).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::promql;
use crate::tools;
use crate::Replicas;

/// The metrics the dashboards must show (the brief of the dashboard).
const MUST_SHOW: &[&str] = &[
    "sessions_sessions_opened_total",
    "sessions_sessions_reused_total",
    "sessions_sessions_closed_total",
    "sessions_sessions_refused_total",
    "sessions_sessions_expired_total",
    "sessions_sessions_deleted_total",
    "sessions_sessions_purged_total",
    "sessions_sessions_active",
    "sessions_sessions_stored",
    "sessions_requests_total",
    "sessions_request_duration_seconds_bucket",
    "sessions_connections_open",
    "sessions_redis_command_duration_seconds_bucket",
    "sessions_redis_errors_total",
    "sessions_store_up",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
];

/// Gauges every replica reports with the same store-wide value: summing them across
/// replicas would multiply the number.
const STORE_WIDE: &[&str] = &["sessions_sessions_active", "sessions_sessions_stored"];

pub struct Dashboard {
    pub file: PathBuf,
    pub json: Value,
}

pub fn load() -> Vec<Dashboard> {
    let dir = tools::repo().join("grafana/dashboards");
    let mut out: Vec<Dashboard> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
            Dashboard { file, json }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// Every panel, including those nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Every PromQL expression of a dashboard: panel targets, and the selectors of its
/// `label_values(selector, label)` variable queries.
pub fn expressions(d: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = q
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
        {
            let selector = args.rsplit_once(',').map(|(s, _)| s).unwrap_or(args);
            out.push(selector.trim().to_string());
        }
    }
    out
}

fn check_conventions(d: &Dashboard, uids: &mut BTreeSet<String>) {
    let name = d.file.display().to_string();
    let uid = d.json["uid"].as_str().unwrap_or_default();
    assert!(!uid.is_empty(), "{name}: a fixed uid");
    assert!(uids.insert(uid.to_string()), "{name}: uid {uid} used twice");
    assert!(
        d.json["id"].is_null(),
        "{name}: id must be null for provisioning"
    );

    let vars = d.json["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{name}: a `datasource` variable of type datasource (prometheus)"
    );
    let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for p in panels(&d.json).into_iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(
            p["datasource"], ds,
            "{name}: panel {title:?} uses ${{datasource}}"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{name}: panel {title:?} has queries");
        for t in targets {
            assert_eq!(
                t["datasource"], ds,
                "{name}: a query of {title:?} uses ${{datasource}}"
            );
        }
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"], ds,
            "{name}: variable {} uses ${{datasource}}",
            v["name"]
        );
    }

    for e in expressions(&d.json) {
        // Ranges adapt to the scrape interval and zoom, or are deliberately long.
        for range in e
            .split('[')
            .skip(1)
            .map(|r| r.split(']').next().unwrap_or(""))
        {
            assert!(
                ["$__rate_interval", "$__range", "1h"].contains(&range),
                "{name}: range [{range}] in {e:?}; use [$__rate_interval]"
            );
        }
        for gauge in STORE_WIDE {
            for (at, _) in e.match_indices(gauge) {
                assert!(
                    e[..at].ends_with("max("),
                    "{name}: {gauge} is store-wide; aggregate it with max(...), in {e:?}"
                );
            }
        }
    }
}

#[test]
fn dashboards_parse_use_exported_metrics_and_follow_conventions() {
    let dashboards = load();
    let mut uids = BTreeSet::new();
    let mut all = Vec::new();
    for d in &dashboards {
        check_conventions(d, &mut uids);
        all.extend(expressions(&d.json));
    }

    let substituted: Vec<String> = all
        .iter()
        .map(|e| promql::substitute_grafana_vars(e))
        .collect();
    promql::promtool_check_exprs(&substituted, "the dashboards' queries");

    let replicas = Replicas::start(1);
    let exported = promql::exported_names(&replicas.scrape(0));
    let unknown = promql::unknown_names(&all, &exported);
    assert!(
        unknown.is_empty(),
        "dashboards use metrics the service does not export: {unknown:#?}"
    );
    let used: BTreeSet<String> = all.iter().flat_map(|e| promql::metric_names(e)).collect();
    let missing: Vec<_> = MUST_SHOW.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "the dashboards do not show {missing:?}");
    println!(
        "{} dashboards, {} queries, {} metric names, all exported",
        dashboards.len(),
        all.len(),
        used.len()
    );
}

#[test]
fn dashboards_match_grafanas_schema() {
    let dir = tools::repo().join("ci/grafana-schema");
    let generated = dir.join(".generated");
    let _ = std::fs::remove_dir_all(&generated);
    std::fs::create_dir_all(&generated).expect("create .generated");
    // Each dashboard as a TypeScript object literal typed as Grafana's Dashboard:
    // literals get excess-property checks, so a misspelt key fails too.
    for d in load() {
        let stem = d
            .file
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&d.file).expect("read dashboard");
        let ts = format!(
            "import type {{ Dashboard }} from '@grafana/schema';\n\
             import type {{ FromJson }} from '../loose';\n\n\
             export const dashboard: FromJson<Dashboard> = {text};\n"
        );
        std::fs::write(generated.join(format!("{stem}.ts")), ts).expect("write .ts");
    }
    let out = tools::run(Command::new("node").arg(tools::tsc()).arg("-p").arg(&dir));
    let _ = std::fs::remove_dir_all(&generated);
    assert!(
        out.status.success(),
        "a dashboard does not match @grafana/schema's Dashboard type:\n{}",
        tools::report(&out)
    );
}

#[test]
fn grafana_provisioning_points_at_the_dashboards_and_prometheus() {
    let repo = tools::repo();
    let ds = tools::yaml_file(&repo.join("grafana/provisioning/datasources/prometheus.yml"));
    let [source] = ds["datasources"]
        .as_array()
        .expect("datasources")
        .as_slice()
    else {
        panic!("one provisioned data source");
    };
    assert_eq!(source["type"], "prometheus");
    assert_eq!(
        source["url"], "http://prometheus:9090",
        "the compose service prometheus"
    );
    // The dashboards' datasource variable defaults to this data source.
    for d in load() {
        let var = d.json["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .find(|v| v["name"] == "datasource")
            .expect("datasource variable")
            .clone();
        assert_eq!(
            var["current"]["value"],
            source["uid"],
            "{}",
            d.file.display()
        );
    }

    let dash = tools::yaml_file(&repo.join("grafana/provisioning/dashboards/sessions.yml"));
    let path = dash["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let compose = std::fs::read_to_string(repo.join("docker-compose.yml")).expect("compose");
    assert!(
        compose.contains(&format!("./grafana/dashboards:{path}:ro")),
        "docker-compose.yml mounts grafana/dashboards at the provider path {path}"
    );
}
