#!/usr/bin/env bash
# Runs every check: formatting, lints, unit tests and the interop tests in network
# namespaces against Debian's ocserv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
cargo build --workspace --bins
echo "== tests"
cargo test --workspace
