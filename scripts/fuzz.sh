#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a fixed time each.
#
#   bash scripts/fuzz.sh [--seconds N] [TARGET...]
#
# N defaults to 10; the targets default to every one `cargo fuzz list` shows. Each target
# starts from its committed seeds in fuzz/corpus/<target>/, but new inputs go to a
# temporary corpus (libFuzzer writes only to the first corpus directory), so runs never
# grow the committed corpus. Crashing inputs land in fuzz/artifacts/<target>/ (ignored by
# git); the script prints them in hex and exits non-zero if any target failed.
# Needs the nightly toolchain (for -Zsanitizer); installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=nightly
seconds=10
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds)
            seconds="${2:?--seconds needs a value}"
            shift 2
            ;;
        --seconds=*)
            seconds="${1#--seconds=}"
            shift
            ;;
        -h | --help)
            sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "fuzz.sh: unknown option $1" >&2
            exit 2
            ;;
        *)
            targets+=("$1")
            shift
            ;;
    esac
done
case "$seconds" in
    '' | *[!0-9]* | 0)
        echo "fuzz.sh: --seconds takes a positive whole number, got '$seconds'" >&2
        exit 2
        ;;
esac

if ! rustup run "$toolchain" rustc --version > /dev/null 2>&1; then
    echo "fuzz.sh: the $toolchain toolchain is needed (rustup toolchain install $toolchain)" >&2
    exit 2
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo "+$toolchain" fuzz list --fuzz-dir fuzz)
fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz.sh: no fuzz targets found" >&2
    exit 2
fi

echo "== cargo fuzz build (${targets[*]})"
for target in "${targets[@]}"; do
    cargo "+$toolchain" fuzz build --fuzz-dir fuzz "$target"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    seeds="fuzz/corpus/$target"
    mkdir -p "$seeds" "$work/$target"
    log="$work/$target.log"
    echo "== fuzz $target for ${seconds}s"
    status=0
    cargo "+$toolchain" fuzz run --fuzz-dir fuzz "$target" "$work/$target" "$seeds" -- \
        -max_total_time="$seconds" -print_final_stats=1 > "$log" 2>&1 || status=$?
    # The seed load, the last progress line and the final stats; everything on failure.
    if [ "$status" -eq 0 ]; then
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done |^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
    else
        cat "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        summary+=("$target: ok, ${execs:-?} execs in ${seconds}s")
    else
        failed+=("$target")
        summary+=("$target: FAILED (exit $status) after ${execs:-?} execs")
        for artifact in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            [ -f "$artifact" ] || continue
            echo "-- $artifact ($(wc -c < "$artifact") bytes):"
            od -An -tx1 -v "$artifact" | tr -s ' \n' ' ' | fold -w 96
            echo
            echo "   reproduce: cargo +$toolchain fuzz run --fuzz-dir fuzz $target $artifact"
        done
    fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
