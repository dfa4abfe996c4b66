#!/usr/bin/env bash
# Builds ferroconnect and shows a tunnel: Debian's ocserv in one network namespace, our
# openconnect client in another, ping and iperf3 across the tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --workspace --bins
exec cargo run -q -p ferroconnect-interop --bin demo
