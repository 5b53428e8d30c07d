#!/usr/bin/env bash
# Runs every test of rvs. Placeholder until the full suite lands (see issue 3).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
