#!/usr/bin/env python3
"""Checks the Helm chart with Helm's own engine (the helm-python-sdk package, no helm
binary): strict lint, renders, the values schema, and that the rendered objects fit
together (selectors, ports, probes, grace periods, the settings the service reads,
the alert rules, the documentation of every value).

    helm_check.py REPO_ROOT OUT_DIR

Writes the rendered manifests of each scenario to OUT_DIR/<scenario>/*.yaml for
kubernetes-validate (run by tests/deploy) and exits non-zero, listing every failure,
when a check fails. Run by `cargo test --test deploy`; see ci/deploy-tools.txt.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

RELEASE = "sessions"
NAMESPACE = "sessions"

# Every optional feature on, and the Redis URL from an existing Secret.
ALL_ON: dict[str, Any] = {
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "networkPolicy": {"enabled": True},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "redis": {"existingSecret": "sessions-redis", "existingSecretKey": "url"},
    "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
    "startupProbe": {"httpGet": {"path": "/live", "port": "admin"}, "failureThreshold": 30,
                     "periodSeconds": 1},
    "imagePullSecrets": [{"name": "registry"}],
    "podAnnotations": {"example.com/team": "identity"},
    "podLabels": {"team": "identity"},
    "priorityClassName": "high",
    "serviceAccount": {"annotations": {"example.com/role": "sessions"}},
    "service": {"annotations": {"example.com/lb": "internal"}},
    "terminationGracePeriodSeconds": 60,
    "volumes": [{"name": "tmp", "emptyDir": {}}],
    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
}

# Values the schema must refuse, and what each gets wrong.
BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("replicaCount as a word", {"replicaCount": "three"}),
    ("a misspelt top-level key", {"replicas": 3}),
    ("an unknown log format", {"config": {"logFormat": "xml"}}),
    ("a key prefix with a hash tag brace", {"config": {"keyPrefix": "a{b}"}}),
    ("a non-Redis URL", {"redis": {"url": "http://redis:6379"}}),
    ("a duration without a number", {"config": {"idleTimeout": "soon"}}),
    ("a port out of range", {"ports": {"admin": 70000}}),
]


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.items.append(what)


def render(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def one(objs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (
        component is None
        or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} ({component}), found {len(found)}")
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def lint(chart_dir: Path, fails: Failures) -> None:
    for name, values in [("default values", None), ("every feature on", ALL_ON)]:
        for kube in (None, "v1.28.0"):
            report = helm.lint(chart_dir, values, strict=True, kube_version=kube)
            bad = [m for m in report["messages"] if m["severity"] >= 2]
            fails.check(not bad and not report["errors"],
                        f"helm lint --strict ({name}, kube {kube or 'default'}): "
                        f"{bad} {report['errors']}")
            if kube is None:
                print(f"helm lint --strict ({name}): {len(report['messages'])} messages, "
                      f"none above info")


def check_workload(objs: list[dict[str, Any]], values: dict[str, Any], repo: Path,
                   fails: Failures, scenario: str) -> None:
    def check(ok: bool, what: str) -> None:
        fails.check(ok, f"[{scenario}] {what}")

    dep = one(objs, "Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    check(selects(spec["selector"]["matchLabels"], pod_labels),
          "Deployment selector matches its pod labels")
    check(spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0,
          "rolling update maxUnavailable is 0")
    [container] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"seneca": values["ports"]["seneca"], "admin": values["ports"]["admin"]},
          f"container ports seneca and admin, got {ports}")
    for probe, path in [("livenessProbe", "/live"), ("readinessProbe", "/ready")]:
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "admin",
              f"{probe} GETs {path} on the admin port, got {get}")

    # The kubelet must not kill a pod that is still draining.
    grace = values["shutdownGraceSeconds"]
    sleep = values["preStopSleepSeconds"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    check(pre_stop == ["sleep", str(sleep)], f"preStop sleeps {sleep}s, got {pre_stop}")
    check(pod["terminationGracePeriodSeconds"] > grace + sleep,
          f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > "
          f"shutdown grace {grace} + preStop {sleep}")

    sc = container.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True
          and pod["securityContext"].get("runAsUser", 0) != 0, "pod runs as a non-root user")
    check(pod.get("enableServiceLinks") is False, "service links off")
    spread = pod.get("topologySpreadConstraints", [])
    check(bool(spread) and all(selects(c["labelSelector"]["matchLabels"], pod_labels)
                               for c in spread),
          "topology spread constraints count this release's pods")

    # Settings: every SESSIONS_* variable the service reads comes from the ConfigMap.
    cm = one(objs, "ConfigMap")
    check(container["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}],
          "the container takes its environment from the ConfigMap")
    read = sorted(set(re.findall(r'"(SESSIONS_[A-Z_]+)"', (repo / "src/config.rs").read_text())))
    missing = [v for v in read if v not in cm["data"]]
    check(not missing, f"ConfigMap sets every variable src/config.rs reads; missing {missing}")
    check(all(isinstance(v, str) and "e+" not in v for v in cm["data"].values()),
          f"ConfigMap values are plain strings: {cm['data']}")
    check(cm["data"]["SESSIONS_SHUTDOWN_GRACE"] == f"{grace}s", "shutdown grace from values")
    check(cm["data"]["SESSIONS_ADMIN_LISTEN"].endswith(f":{values['ports']['admin']}"),
          "admin listener on the admin container port")

    redis_env = [e for e in container["env"] if e["name"] == "REDIS_URL"]
    ref = redis_env[0]["valueFrom"]["secretKeyRef"] if redis_env else {}
    if values["redis"]["existingSecret"]:
        check(ref == {"name": values["redis"]["existingSecret"],
                      "key": values["redis"]["existingSecretKey"]},
              f"REDIS_URL from the existing Secret, got {ref}")
        check(not [o for o in objs if o["kind"] == "Secret"], "no Secret created")
    else:
        secret = one(objs, "Secret")
        check(ref.get("name") == secret["metadata"]["name"]
              and ref.get("key") in secret["stringData"],
              f"REDIS_URL from the chart's Secret, got {ref}")

    seneca = one(objs, "Service", "seneca")
    admin = one(objs, "Service", "admin")
    for svc, port in [(seneca, "seneca"), (admin, "admin")]:
        check(selects(svc["spec"]["selector"], pod_labels), f"{port} Service selects the pods")
        check([p["targetPort"] for p in svc["spec"]["ports"]] == [port],
              f"{port} Service targets the {port} container port")

    test_pods = [o for o in objs if o["kind"] == "Pod"]
    for tp in test_pods:
        labels = tp["metadata"]["labels"]
        check(not selects(seneca["spec"]["selector"], labels),
              "the helm test pod is not selected by the Services")

    hpa = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    if values["autoscaling"]["enabled"]:
        check(len(hpa) == 1 and hpa[0]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"],
              "the HPA scales the Deployment")
        check("replicas" not in spec, "no fixed replicas under an HPA")
    else:
        check(not hpa and spec["replicas"] == values["replicaCount"], "fixed replicas, no HPA")

    pdb = one(objs, "PodDisruptionBudget")
    check(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), "the PDB selects the pods")

    sm = [o for o in objs if o["kind"] == "ServiceMonitor"]
    if values["serviceMonitor"]["enabled"]:
        sel = sm[0]["spec"]["selector"]["matchLabels"]
        check(selects(sel, admin["metadata"]["labels"]), "the ServiceMonitor selects the admin Service")
        check(not selects(sel, seneca["metadata"]["labels"]), "... and not the Seneca Service")
        [ep] = sm[0]["spec"]["endpoints"]
        check(ep["port"] == "admin" and ep["path"] == "/metrics", "it scrapes admin /metrics")
        check({"action": "replace", "targetLabel": "job", "replacement": "sessions"}
              in ep.get("relabelings", []), 'it sets job="sessions" for the rules and dashboards')

    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    if values["prometheusRule"]["enabled"]:
        want = yaml.safe_load((repo / "deploy/prometheus/rules/sessions.rules.yml").read_text())
        check(len(rules) == 1 and rules[0]["spec"] == want,
              "the PrometheusRule carries deploy/prometheus/rules/sessions.rules.yml")

    np_ = [o for o in objs if o["kind"] == "NetworkPolicy"]
    if values["networkPolicy"]["enabled"]:
        pol = np_[0]["spec"]
        check(selects(pol["podSelector"]["matchLabels"], pod_labels), "the NetworkPolicy selects the pods")
        allowed = sorted(p["port"] for rule in pol["ingress"] for p in rule["ports"])
        check(allowed == sorted([values["ports"]["seneca"], values["ports"]["admin"]]),
              f"the NetworkPolicy opens exactly the two ports, got {allowed}")
        admin_rule = [r for r in pol["ingress"] if r["ports"][0]["port"] == values["ports"]["admin"]][0]
        check(any(selects(peer.get("podSelector", {}).get("matchLabels", {"x": "y"}),
                          tp["metadata"]["labels"])
                  for peer in admin_rule.get("from", []) for tp in test_pods),
              "the NetworkPolicy lets the helm test pod reach the admin port")


def check_refusals(chart: helm.Chart, fails: Failures) -> None:
    for what, bad in BAD_VALUES:
        try:
            render(chart, bad)
            fails.check(False, f"the values schema accepts {what}: {bad}")
        except helm.HelmValuesError:
            pass
    for what, bad, needle in [
        ("a grace period shorter than preStop + drain", {"terminationGracePeriodSeconds": 20},
         "terminationGracePeriodSeconds"),
        ("no Redis at all", {"redis": {"url": "", "existingSecret": ""}}, "redis.url"),
    ]:
        try:
            render(chart, bad)
            fails.check(False, f"the chart renders with {what}")
        except helm.HelmError as e:
            fails.check(needle in str(e), f"refusing {what} names {needle}: {e}")


def check_notes(chart: helm.Chart, fails: Failures) -> None:
    notes = render(chart, {"redis": {"url": "redis://:s3cret@redis:6379/0"}})
    text = next(v for k, v in notes.items() if k.endswith("NOTES.txt"))
    fails.check("s3cret" not in text and "redis://***@redis:6379/0" in text,
                "NOTES.txt masks the Redis password")
    fails.check(f"{RELEASE}.{NAMESPACE}.svc:8807" in text, "NOTES.txt names the Seneca address")


def leaf_paths(values: dict[str, Any], documented: set[str], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = prefix + key
        if path in documented or not isinstance(value, dict) or not value:
            out.append(path)
        else:
            out.extend(leaf_paths(value, documented, path + "."))
    return out


def documented_paths(values_yaml: str) -> set[str]:
    """Key paths with a `# --` comment block right above them."""
    documented, stack, pending = set(), [], False
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#"):
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(2)))
            if pending:
                documented.add(".".join(k for _, k in stack))
        pending = False
    return documented


def check_docs(chart_dir: Path, chart: helm.Chart, fails: Failures) -> None:
    text = (chart_dir / "values.yaml").read_text()
    documented = documented_paths(text)
    readme = (chart_dir / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    paths = leaf_paths(chart.values, documented)
    undocumented = [p for p in paths if p not in documented]
    fails.check(not undocumented, f"values.yaml: no `# --` comment above {undocumented}")
    missing = [p for p in paths if p not in rows]
    fails.check(not missing, f"README.md values table lacks {missing}")
    stale = sorted(rows - set(paths))
    fails.check(not stale, f"README.md values table names values that do not exist: {stale}")
    schema = chart.schema or {}
    unknown = [k for k in chart.values if k not in schema.get("properties", {})]
    fails.check(not unknown, f"values.schema.json lacks {unknown}")
    print(f"values: {len(paths)} documented in values.yaml and README.md")


def write(objs_by_path: dict[str, str], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path, text in objs_by_path.items():
        if path.endswith("NOTES.txt") or not any(yaml.safe_load_all(text)):
            continue
        (out / path.replace("/", "_")).write_text(text)
        n += 1
    return n


def main() -> int:
    repo, out = Path(sys.argv[1]), Path(sys.argv[2])
    chart_dir = repo / "helm/sessions"
    fails = Failures()
    lint(chart_dir, fails)
    with helm.Chart.load(chart_dir) as chart:
        for scenario, overrides in [("default", {}), ("all", ALL_ON)]:
            try:
                manifests = render(chart, copy.deepcopy(overrides))
            except helm.HelmError as e:
                fails.check(False, f"[{scenario}] the chart does not render: {e}")
                continue
            values = chart.merge_values(copy.deepcopy(overrides))
            objs = objects(manifests)
            try:
                check_workload(objs, values, repo, fails, scenario)
            except (AssertionError, KeyError, IndexError, TypeError) as e:
                fails.check(False, f"[{scenario}] rendered objects are not as expected: {e!r}")
            n = write(manifests, out / scenario)
            kinds = sorted({o["kind"] for o in objs})
            print(f"rendered {scenario}: {n} manifests, kinds {', '.join(kinds)}")
        check_refusals(chart, fails)
        check_notes(chart, fails)
        check_docs(chart_dir, chart, fails)
    if fails.items:
        print("\nchart checks failed:", file=sys.stderr)
        for f in fails.items:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
