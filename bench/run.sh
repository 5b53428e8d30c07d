#!/usr/bin/env bash
# Benchmark suite entry point (see bench/README.md). Placeholder: the comparisons are being added.
set -euo pipefail
cd "$(dirname "$0")"
echo "bench/run.sh: no comparisons yet"
