#!/usr/bin/env bash
# Type-checks the fuzz targets (fuzz/) against the current library, so an API change
# that breaks them is caught without running them. No sanitizer and no nightly flags:
# `cargo check` on the stable toolchain is enough. Running the fuzzers is manual
# (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo check --manifest-path fuzz/Cargo.toml --bins --target-dir target/fuzz-check
