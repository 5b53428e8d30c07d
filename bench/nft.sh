#!/usr/bin/env bash
# Packet path end to end: nftables DNAT (numgen) vs plain forwarding, director CPU per request
# by the NAPI-kthread method. See bench/README.md.
set -euo pipefail
exec "$BENCH_BIN/rvs-bench" nft --mode "$BENCH_MODE" --out "$BENCH_OUT/nft.json"
