#!/usr/bin/env bash
# Where CPU 1's time goes in each measured run of one comparison: CPU 1 holds only the balancer
# process (proxy) or the director's NAPI kthreads (packet-nat, packet-dr), so a profile of that
# CPU, split by run, shows what each subject's per-request cost is made of — and which part of it
# is the test bed's own (waking the thread on the other CPU, veth copies) rather than the
# balancer's. See bench/README.md ("Where the time goes").
#
#   bench/profile.sh proxy|packet-nat|packet-dr [smoke|quick|full]     (root; default quick)
#
# Runs `rvs-bench <comparison>` under `perf record -C 1 -g -k CLOCK_MONOTONIC` with the phase log
# (RVS_BENCH_PHASES), then prints a table per run: the share of CPU 1's busy samples in each cost
# category, and that share of the run's measured CPU per request. PROFILE_OUT=DIR keeps the files
# (perf.data, phases, JSON, table) in DIR instead of a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cmp=${1:-}
mode=${2:-quick}
case "$cmp" in
    proxy | packet-nat | packet-dr) ;;
    *) sed -n '8p' "$0" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/profile.sh needs root (network namespaces, CPU pinning, perf on a CPU)" >&2
    exit 2
fi
if ! command -v perf > /dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf
fi
TARGET=${CARGO_TARGET_DIR:-target}
flag=(--release) bin="$TARGET/release"
[ "$mode" = smoke ] && flag=() bin="$TARGET/debug"
cargo build --locked "${flag[@]}" -p rvs-testbed --bin rvs-bench -p rvsd -p rvsadm --bins
cargo build --locked "${flag[@]}" -p rvs-xdp --bin rvs-xdp-forward
out=${PROFILE_OUT:-$(mktemp -d /tmp/rvs-profile.XXXXXX)}
mkdir -p "$out"
rm -f "$out/phases" "$out/perf.data"
json="$out/${cmp//-/_}.json"
RVS_BENCH_PHASES="$out/phases" perf record -q -C 1 -g -k CLOCK_MONOTONIC -e cpu-clock \
    -o "$out/perf.data" -- "$bin/rvs-bench" "$cmp" --mode "$mode" --out "$json"
perf script -i "$out/perf.data" -F comm,time,period,ip,sym 2> /dev/null \
    | python3 bench/profile_report.py "$cmp" "$out/phases" "$json" | tee "$out/profile.md"
echo "files: $out"
