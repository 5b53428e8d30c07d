#!/usr/bin/env bash
# Proxy path: direct vs rvs proxy vs HAProxy (mode tcp) vs nginx stream. See bench/README.md.
set -euo pipefail
exec "$BENCH_BIN/rvs-bench" proxy --mode "$BENCH_MODE" --out "$BENCH_OUT/proxy.json"
