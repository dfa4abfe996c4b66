#!/usr/bin/env bash
# Runs every check: formatting, lints, unit tests and the interop tests in network
# namespaces against Debian's ocserv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# One full run from a clean tree gains nothing from incremental state, which would double
# the debug target's size on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
cargo build --workspace --bins
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
# A short run of every fuzz target (scripts/fuzz.sh --seconds N runs them longer). The
# fuzzers need the nightly toolchain; without one it is said loudly and skipped.
if rustup run nightly rustc --version >/dev/null 2>&1 ||
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    bash scripts/fuzz.sh --seconds 10 || status=1
else
    echo "== fuzz SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
fi
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
