#!/usr/bin/env bash
# Benchmarks ferroconnect's client and server against Debian's openconnect and ocserv in
# network namespaces and prints ours/theirs ratios; see bench/README.md.
#
#   bench/run.sh [--quick] [--scale N,...] [--out DIR]   (as root; DIR defaults to target/bench)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=target/bench
scale_only=0
prev=
for arg in "$@"; do
    [ "$arg" = --quick ] && quick=1
    [ "$prev" = --out ] && out="$arg"
    case "$arg" in --scale | --only) scale_only=1 ;; esac
    prev="$arg"
done

bash scripts/deps.sh
echo "== cargo build --release --workspace"
cargo build --release --workspace

target="${CARGO_TARGET_DIR:-$PWD/target}"
# The driver and the lab helpers run our binaries from here (not target/debug).
export FERROCONNECT_BIN_DIR="$target/release"
labs=$(mktemp)
export BENCH_LABS_FILE="$labs"
cleanup() {
    # The driver removes its namespaces itself; this is for a driver killed mid-run.
    while read -r lab; do
        for ns in "${lab}s" "${lab}c"; do
            if ip netns list | grep -qw "$ns"; then
                ip netns pids "$ns" | xargs -r kill -9 2>/dev/null || true
                ip netns del "$ns" 2>/dev/null || true
            fi
            rm -rf "/etc/netns/$ns"
        done
    done <"$labs"
    rm -f "$labs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# 1000 sessions need a few thousand descriptors in the load client and in the servers.
ulimit -n 65536 2>/dev/null || true
if [ "$quick" = 1 ]; then limit=15m; else limit=45m; fi
status=0
timeout --foreground --kill-after=30 "$limit" "$FERROCONNECT_BIN_DIR/bench" "$@" || status=$?
[ "$status" = 124 ] && echo "bench: stopped after $limit" >&2
# The protocols whose servers cannot run here: both clients against our Fortinet and
# GlobalProtect test gateways, over DTLS/ESP and TLS. Left out when only some pairs or the
# scale test were asked for.
if [ "$scale_only" = 0 ]; then
    gw_args=(--out "$out")
    [ "$quick" = 1 ] && gw_args+=(--quick)
    timeout --foreground --kill-after=30 15m "$FERROCONNECT_BIN_DIR/bench_gateways" "${gw_args[@]}" || status=$?
fi
exit "$status"
