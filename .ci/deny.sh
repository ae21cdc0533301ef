#!/usr/bin/env bash
# Checks the dependency graph against deny.toml: licenses, banned or wildcard
# versions, and sources (crates.io only). Runs offline. Installs cargo-deny when it is
# missing (a few minutes to build the first time).
#
# The RustSec advisory check needs the advisory database from the network; run it
# where that is reachable:  cargo deny check advisories   (see SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "deny.sh: installing cargo-deny"
    cargo install cargo-deny --locked --version '^0.20'
fi
cargo deny --version
cargo deny check bans licenses sources
