//! PromQL as the checks need it: the metric names an expression selects, the names a
//! scrape exports, Grafana's template variables replaced by values Prometheus
//! accepts, and `promtool check rules` over a set of expressions.

use std::collections::BTreeSet;
use std::process::Command;

use crate::tools;

/// Series Prometheus makes itself for every target; the service does not export them.
pub const SYNTHETIC: &[&str] = &["up"];

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    // Aggregations, which may be followed by `by (...)` before their parenthesis.
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];

/// Keywords after which a parenthesised list holds label names, not expressions.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects: identifiers outside strings, label matchers,
/// ranges and label lists that are neither keywords nor function calls.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' => i = skip_to(b, i, b'}'),
            b'[' => i = skip_to(b, i, b']'),
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().as_bytes().first().copied();
                if LABEL_LISTS.contains(&word) {
                    if next == Some(b'(') {
                        let open = i + (expr[i..].len() - expr[i..].trim_start().len());
                        i = skip_to(b, open, b')');
                    }
                } else if !KEYWORDS.contains(&word) && next != Some(b'(') {
                    names.insert(word.to_string());
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // A number, possibly with an exponent (1e3) or a duration unit (5m).
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn skip_to(b: &[u8], mut i: usize, close: u8) -> usize {
    while i < b.len() && b[i] != close {
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        }
        i += 1;
    }
    i + 1
}

/// Every series name a scrape holds, plus each histogram's family name.
pub fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                names.insert(name.to_string());
                if kind == "histogram" || kind == "summary" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// Names `exprs` use that the scrape does not export (and Prometheus does not make).
pub fn unknown_names<'a>(
    exprs: impl IntoIterator<Item = &'a String>,
    exported: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut unknown = Vec::new();
    for expr in exprs {
        for name in metric_names(expr) {
            if !exported.contains(&name) && !SYNTHETIC.contains(&name.as_str()) {
                unknown.push((name, expr.clone()));
            }
        }
    }
    unknown
}

/// Grafana's variables replaced by values that keep the expression's meaning, for
/// promtool and for querying a real Prometheus.
pub fn substitute_grafana_vars(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${job}", "sessions")
        .replace("$job", "sessions")
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(
        !out.contains('$'),
        "a Grafana variable the deploy test does not know is left in {out:?}; add it to \
         substitute_grafana_vars"
    );
    out
}

/// `promtool check rules` over `exprs`, each as a recording rule.
pub fn promtool_check_exprs(exprs: &[String], what: &str) {
    let dir = tools::TempDir::new("promql");
    let mut yaml = String::from("groups:\n  - name: expressions\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(e).expect("string");
        yaml.push_str(&format!(
            "      - record: check:expression_{i}\n        expr: {quoted}\n"
        ));
    }
    let file = dir.join("expressions.rules.yml");
    std::fs::write(&file, yaml).expect("write rules");
    tools::run_ok(
        Command::new(tools::on_path("promtool"))
            .args(["check", "rules"])
            .arg(&file),
        &format!("promtool check rules over {what}"),
    );
}

#[test]
fn metric_names_skips_functions_labels_and_ranges() {
    let e = r#"histogram_quantile(0.99, sum by (cmd, le) (rate(a_bucket{job=~"x_total"}[5m]))) / on(instance) group_left b + count(c) * 1e3"#;
    let got: Vec<_> = metric_names(e).into_iter().collect();
    assert_eq!(got, ["a_bucket", "b", "c"]);
    let got: Vec<_> = metric_names(r#"absent(up{job="s"} == 1) unless max(x:rec) > bool 0"#)
        .into_iter()
        .collect();
    assert_eq!(got, ["up", "x:rec"]);
}

#[test]
fn exported_names_include_histogram_series() {
    let scrape = "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_sum 0\nh_count 0\n\
                  # TYPE g gauge\ng 1\n";
    let names = exported_names(scrape);
    for n in ["h", "h_bucket", "h_sum", "h_count", "g"] {
        assert!(names.contains(n), "{n}");
    }
}
