#!/usr/bin/env bash
# rvs XDP NAT / FULLNAT end to end: director CPU per request (NAPI-kthread method), requests/s
# and p99, same topology and runs as nft.sh. See bench/README.md ("XDP NAT/FULLNAT end to end").
set -euo pipefail
dir=$(dirname "$BENCH_BIN")
profile=$(basename "$BENCH_BIN")
flag=()
[ "$profile" = release ] && flag=(--release)
if [ ! -x "$BENCH_BIN/examples/xdp_nat_e2e" ]; then
    CARGO_TARGET_DIR="$dir" cargo build "${flag[@]}" -p rvs-xdp --example xdp_nat_e2e
fi
exec "$BENCH_BIN/examples/xdp_nat_e2e" --mode "$BENCH_MODE" --out "$BENCH_OUT/xdp_nat_e2e.json"
