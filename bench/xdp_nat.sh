#!/usr/bin/env bash
# XDP NAT / FULLNAT per-packet cost through BPF_PROG_TEST_RUN (frame restored before every run
# by the bench wrapper): towards the real (established, new flow) and the reply, beside the
# MAC-swap ceiling. See bench/README.md ("XDP NAT/FULLNAT per-packet cost").
set -euo pipefail
if [ ! -x "$BENCH_BIN/rvs-xdp-nat-bench" ]; then
    profile=$(basename "$BENCH_BIN")
    flag=()
    [ "$profile" = release ] && flag=(--release)
    CARGO_TARGET_DIR=$(dirname "$BENCH_BIN") cargo build "${flag[@]}" -p rvs-xdp --bin rvs-xdp-nat-bench
fi
exec "$BENCH_BIN/rvs-xdp-nat-bench" --mode "$BENCH_MODE" --out "$BENCH_OUT/xdp_nat.json"
