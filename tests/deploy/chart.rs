//! The Helm chart: ci/helm_check.py lints it strictly with Helm's engine, renders it
//! with default values and with every optional feature on, and checks the rendered
//! objects fit together; kubernetes-validate then checks every rendered manifest
//! against the Kubernetes 1.28 API and the newest it knows, rejecting unknown fields.

use std::process::Command;

use crate::tools::{self, TempDir};

/// Kinds without a schema in kubernetes-validate (Prometheus Operator CRDs); the
/// chart check compares their content with what they must say instead.
const CRD_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule"];

#[test]
fn chart_rules_are_the_prometheus_rules() {
    let repo = tools::repo();
    let chart = std::fs::read(repo.join("helm/sessions/files/sessions.rules.yml")).expect("chart");
    let deploy =
        std::fs::read(repo.join("deploy/prometheus/rules/sessions.rules.yml")).expect("rules");
    assert!(
        chart == deploy,
        "helm/sessions/files/sessions.rules.yml differs from \
         deploy/prometheus/rules/sessions.rules.yml; copy the latter over the former"
    );
}

#[test]
fn chart_lints_renders_and_validates() {
    let repo = tools::repo();
    let out_dir = TempDir::new("chart");
    let out = tools::run(
        Command::new(tools::python())
            .arg(repo.join("ci/helm_check.py"))
            .arg(&repo)
            .arg(out_dir.path()),
    );
    assert!(
        out.status.success(),
        "ci/helm_check.py:\n{}",
        tools::report(&out)
    );
    println!("{}", tools::stdout(&out));

    let mut files = Vec::new();
    for scenario in ["default", "all"] {
        let dir = out_dir.join(scenario);
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        found.sort();
        assert!(!found.is_empty(), "no manifests rendered for {scenario}");
        files.extend(found);
    }

    let latest = tools::stdout(&tools::run_ok(
        Command::new(tools::python()).args([
            "-c",
            "import kubernetes_validate.utils as u; print(u.latest_version())",
        ]),
        "ask kubernetes-validate for its newest Kubernetes version",
    ))
    .trim()
    .to_string();
    for version in ["1.28.0", latest.as_str()] {
        let out = tools::run(
            Command::new(tools::venv_bin("kubernetes-validate"))
                .args(["--strict", "-k", version])
                .args(&files),
        );
        let text = tools::stdout(&out);
        assert!(
            out.status.success() && !text.contains("ERROR"),
            "kubernetes-validate --strict -k {version}:\n{}",
            tools::report(&out)
        );
        for line in text.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                CRD_KINDS
                    .iter()
                    .any(|k| line.contains(&format!("kind {k} "))),
                "kubernetes-validate -k {version} could not check: {line}"
            );
        }
        let passed = text
            .lines()
            .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
            .count();
        assert!(
            passed >= 15,
            "kubernetes-validate -k {version} checked only {passed} objects:\n{text}"
        );
        println!("kubernetes-validate --strict -k {version}: {passed} objects passed");
    }
}
