#!/usr/bin/env bash
# Packet path end to end, one L2 segment: rvs XDP DR and TUN (rvsd) vs wrk straight to the
# reals and a trivial XDP forwarder (rvs-xdp-forward, the ceiling), every subject in every
# round. See bench/README.md ("Packet path end to end").
set -euo pipefail
exec "$BENCH_BIN/rvs-bench" packet-dr --mode "$BENCH_MODE" --out "$BENCH_OUT/packet_dr.json"
