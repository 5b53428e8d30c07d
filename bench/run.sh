#!/usr/bin/env bash
# The benchmark suite: runs every comparison available and writes the report.
#
#   bench/run.sh [--quick | --full | --smoke]      (default --quick; see bench/README.md)
#
# --quick  (< 5 min)  and --full: release builds; writes bench/results/<date>.md, the charts
#          and raw JSON under bench/results/<date>/.
# --smoke  one very short run of each comparison with the debug build, results in a temporary
#          directory, and a check that every comparison produced numbers (scripts/test.sh runs it).
#
# Each comparison is a script bench/<name>.sh called with these variables set:
#   BENCH_MODE  smoke | quick | full
#   BENCH_OUT   directory where it writes <name>.json (format: see bench/README.md)
#   BENCH_BIN   directory of the built workspace binaries (rvs-bench, rvsd, ...)
# Set BENCH_RESULTS=DIR to write the report to DIR/<date>.md instead of bench/results/.
# A comparison that cannot run at all here exits 0 after writing a JSON whose "skipped" says why.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=quick
for arg in "$@"; do
    case "$arg" in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --smoke) MODE=smoke ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh needs root (network namespaces, CPU pinning); skipping" >&2
    exit 0
fi

# Peers, installed from Debian when missing.
PEERS=(nginx libnginx-mod-stream haproxy wrk iperf3 nftables ethtool iproute2 iputils-ping util-linux python3-matplotlib)
missing=()
for p in "${PEERS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}" || exit 1
fi

TARGET=${CARGO_TARGET_DIR:-target}
if [ "$MODE" = smoke ]; then
    PROFILE_FLAG=() BIN="$TARGET/debug"
else
    PROFILE_FLAG=(--release) BIN="$TARGET/release"
fi
echo "building (${PROFILE_FLAG[*]:-debug}) ..."
build_start=$SECONDS
cargo build --locked "${PROFILE_FLAG[@]}" -p rvs-testbed --bins || exit 1
# rvs itself: measured when it builds; the report says so when it does not.
# A stale rvsd from an earlier build must not be measured in its place.
if ! cargo build --locked "${PROFILE_FLAG[@]}" -p rvsd -p rvsadm --bins; then
    echo "WARNING: rvsd did not build; rvs will be reported as not measured"
    export RVS_BENCH_NO_RVSD="rvsd did not build at this commit (see the bench log)"
fi
# The XDP per-packet benches, xdp_serve (the library path for what rvsd cannot configure yet) and
# rvs-xdp-forward (the trivial XDP forwarder, packet_dr's ceiling).
cargo build --locked "${PROFILE_FLAG[@]}" -p rvs-xdp --bin rvs-xdp-bench --bin rvs-xdp-nat-bench \
    --bin rvs-xdp-forward --example xdp_serve \
    || echo "WARNING: rvs-xdp benches did not build"
echo "==== build done in $((SECONDS - build_start))s"
bench_start=$SECONDS

DATE=$(date -u +%Y-%m-%d)
if [ "$MODE" = smoke ]; then
    OUT=$(mktemp -d /tmp/rvs-bench-smoke.XXXXXX)
    trap 'rm -rf "$OUT"' EXIT
else
    # BENCH_RESULTS: where the report goes (default bench/results; e.g. /tmp/x for a trial run
    # that must not replace the committed report of the day).
    RESULTS=${BENCH_RESULTS:-bench/results}
    OUT="$RESULTS/$DATE"
    mkdir -p "$OUT"
    rm -f "$OUT"/*.json
fi
export BENCH_MODE=$MODE BENCH_OUT=$(realpath "$OUT") BENCH_BIN=$(realpath "$BIN")

failed=()
for script in bench/*.sh; do
    name=$(basename "$script" .sh)
    # run.sh itself, and profile.sh: a tool that profiles one comparison, not a comparison.
    case "$name" in run | profile) continue ;; esac
    echo "==== bench $name ($MODE)"
    start=$SECONDS
    if bash "$script"; then
        echo "==== bench $name done in $((SECONDS - start))s"
    else
        echo "==== bench $name FAILED after $((SECONDS - start))s"
        failed+=("$name")
    fi
done

if [ "$MODE" = smoke ]; then
    /usr/bin/python3 bench/report.py --in "$OUT" --check || failed+=(check)
else
    /usr/bin/python3 bench/report.py --in "$OUT" --out "$RESULTS/$DATE.md" --charts "$OUT" || failed+=(report)
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: FAILED: ${failed[*]}"
    exit 1
fi
echo "bench: ok ($MODE) in ${SECONDS}s (comparisons and report $((SECONDS - bench_start))s, build before them)"
