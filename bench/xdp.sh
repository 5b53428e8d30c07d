#!/usr/bin/env bash
# XDP per-packet cost through BPF_PROG_TEST_RUN (frame restored before every run by a wrapper
# program): rvs DR and TUN, established / new flow / new flow with a full table, beside the
# MAC-swap ceiling and the wrapper's own cost. See bench/README.md ("XDP per-packet cost").
set -euo pipefail
if [ ! -x "$BENCH_BIN/rvs-xdp-bench" ]; then
    # run.sh may not build rvs-xdp yet: build it into the same target dir and profile.
    profile=$(basename "$BENCH_BIN")
    flag=()
    [ "$profile" = release ] && flag=(--release)
    CARGO_TARGET_DIR=$(dirname "$BENCH_BIN") cargo build "${flag[@]}" -p rvs-xdp --bin rvs-xdp-bench
fi
exec "$BENCH_BIN/rvs-xdp-bench" --mode "$BENCH_MODE" --out "$BENCH_OUT/xdp.json"
