#!/usr/bin/env bash
# Packet path end to end, two-arm topology: rvs XDP NAT (rvsd) and FULLNAT vs nftables DNAT
# (+ masquerade) vs plain forwarding, every subject in every round; director CPU per request by
# the NAPI-kthread method, requests/s, p99, bulk throughput, memory for idle connections.
# See bench/README.md ("Packet path end to end").
set -euo pipefail
exec "$BENCH_BIN/rvs-bench" packet-nat --mode "$BENCH_MODE" --out "$BENCH_OUT/packet_nat.json"
