#!/usr/bin/env bash
# Runs every test of rvs: the one command a user or CI needs.
#
#   scripts/test.sh [--no-install] [--no-bench] [--no-lint]
#
# Steps (each one runs even when an earlier one failed; the exit status is non-zero if any failed):
#   1. install missing Debian packages (root only; `apt-get update` once, only when something is
#      missing) and missing rustup components (rustfmt, clippy);
#   2. build every workspace binary (`cargo build --workspace --bins --locked`) — end-to-end tests
#      find them through `rvs_testbed::bin_path` (which also builds them when missing, so a bare
#      `cargo test -p <crate>` in a fresh target directory works too);
#   3. run every test: cargo-nextest when installed (plus doctests), `cargo test` otherwise.
#      Root-only tests (network namespaces, XDP) run when we are root and skip with a printed
#      reason otherwise;
#   4. the benchmark smoke run (`bench/run.sh --smoke`: one very short run of each comparison,
#      asserting each produced numbers);
#   5. `cargo fmt --check`, `cargo clippy --workspace --all-targets -- -D warnings` and
#      `cargo doc --workspace --no-deps` with `RUSTDOCFLAGS=-D warnings` (broken doc links).
#
# The summary at the end gives each step's result and time, the free disk and memory, and, when
# something failed, the failed tests and the last 40 lines of each failed step, so the tail of a
# long CI log says what went wrong. Its last line is "tests: N passed, N failed, N skipped".
#
# Environment: CARGO_TARGET_DIR is honoured; CI=true makes cargo output plain.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)

INSTALL=1 BENCH=1 LINT=1
for arg in "$@"; do
    case "$arg" in
        --no-install) INSTALL=0 ;;
        --no-bench) BENCH=0 ;;
        --no-lint) LINT=0 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

if [ "${CI:-}" = "true" ]; then
    export CARGO_TERM_COLOR=never CARGO_TERM_PROGRESS_WHEN=never
fi

# Debian packages the tests and benchmarks use as peers or tools.
PACKAGES=(nginx libnginx-mod-stream haproxy keepalived bird2 dnsutils curl wrk iperf3 nftables
    tcpdump iputils-ping ethtool clang llvm libbpf-dev bpftool iproute2 procps python3-matplotlib
    opensmtpd)

declare -a STEP_NAMES=() STEP_RESULTS=() STEP_SECS=()
FAILED=0
STEP_DIR=$(mktemp -d)

# run_step NAME CMD... — runs CMD, records pass/fail and duration, never aborts the script.
run_step() {
    local name=$1
    shift
    echo
    echo "==== [$name] $*"
    local start=$SECONDS rc=0
    # The step's output also goes to its own log, whose tail the summary repeats on failure.
    # (A pipeline runs the step in a subshell: what it records for the summary goes to files.)
    "$@" 2>&1 | tee "$STEP_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    local secs=$((SECONDS - start))
    STEP_NAMES+=("$name")
    STEP_SECS+=("$secs")
    if [ "$rc" -eq 0 ]; then
        STEP_RESULTS+=("ok")
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        FAILED=1
    fi
    echo "==== [$name] ${STEP_RESULTS[-1]} in ${secs}s"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all Debian packages present"
    elif ! is_root; then
        echo "not root: cannot install ${missing[*]} (tests needing them will skip or fail)"
    else
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q || return 1
        apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
    fi
    local c
    for c in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
            rustup component add "$c" || return 1
        fi
    done
}

workspace_crates() {
    cargo metadata --no-deps --format-version 1 --locked |
        /usr/bin/python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))'
}

# When the workspace-wide test build fails (one crate does not compile), test crate by crate so
# every other crate's results still show, and list each crate's outcome in the summary.
run_tests_per_crate() {
    local rc=0 c start crc
    echo "==== workspace test build failed: testing crate by crate"
    for c in $(workspace_crates); do
        echo "---- crate $c"
        start=$SECONDS crc=0
        cargo test -p "$c" --locked --no-fail-fast 2>&1 | tee -a "$TEST_LOG" || crc=$?
        if [ "$crc" -eq 0 ]; then
            printf '    %-16s ok %5ss\n' "$c" $((SECONDS - start)) >>"$STEP_DIR/crates"
        else
            printf '    %-16s FAILED (exit %s) %5ss\n' "$c" "$crc" $((SECONDS - start)) >>"$STEP_DIR/crates"
            rc=1
        fi
    done
    return $rc
}

# Every test runner's output is also kept here, for the totals line at the end.
TEST_LOG=$(mktemp)
trap 'rm -rf "$TEST_LOG" "$STEP_DIR"' EXIT

# Free disk under the target directory and free memory: a full disk fails a build or a test in
# ways that look like anything else.
resources() {
    local target=${CARGO_TARGET_DIR:-$ROOT_DIR/target}
    [ -d "$target" ] || target=$ROOT_DIR
    echo "$(df -h --output=avail "$target" | tail -1 | tr -d ' ') free on $target's disk," \
        "$(awk '/MemAvailable/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory available"
}

run_tests() {
    local rc=0
    if cargo nextest --version >/dev/null 2>&1; then
        # nextest exits 101 when the build fails, 100 when tests fail.
        cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee -a "$TEST_LOG" || rc=$?
        if [ "$rc" -eq 101 ]; then
            run_tests_per_crate # includes doctests
            return $?
        fi
        # nextest does not run doctests.
        cargo test --workspace --locked --doc 2>&1 | tee -a "$TEST_LOG" || rc=$?
        return $rc
    fi
    cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$TEST_LOG" || rc=$?
    if [ "$rc" -ne 0 ] && ! cargo test --workspace --locked --no-run >/dev/null 2>&1; then
        run_tests_per_crate
        return $?
    fi
    return $rc
}

bench_smoke() {
    if [ ! -x bench/run.sh ]; then
        echo "bench/run.sh missing"
        return 1
    fi
    timeout 900 bench/run.sh --smoke
}

echo "rvs test suite — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -sr), $(nproc) CPUs, uid $(id -u)"
echo "$(resources)"
if ! is_root; then
    echo "NOTE: not root — tests that need network namespaces or XDP will skip."
fi

[ "$INSTALL" = 1 ] && run_step install install_packages
run_step build cargo build --workspace --bins --locked
run_step test run_tests
[ "$BENCH" = 1 ] && run_step bench-smoke bench_smoke
if [ "$LINT" = 1 ]; then
    run_step fmt cargo fmt --all --check
    run_step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
    run_step doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
fi

echo
echo "==== summary ($ROOT_DIR)"
for i in "${!STEP_NAMES[@]}"; do
    printf '  %-12s %-20s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECS[$i]}"
    if [ "${STEP_NAMES[$i]}" = test ] && [ -f "$STEP_DIR/crates" ]; then
        cat "$STEP_DIR/crates"
    fi
done
printf '  %-12s %-20s %5ss\n' total "$([ $FAILED = 0 ] && echo ok || echo FAILED)" "$SECONDS"
echo "  $(resources)"

# What failed, repeated here at the end so that the tail of a long log says it: the tests that
# did not pass, then the last lines of each failed step.
if [ "$FAILED" != 0 ]; then
    echo
    echo "==== what failed"
    grep -E '^ +(FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|SIGBUS|LEAK|FLAKY) \[|^test .* \.\.\. FAILED' \
        "$TEST_LOG" | sed 's/^ */  /' | sort -u
    for i in "${!STEP_NAMES[@]}"; do
        [ "${STEP_RESULTS[$i]}" = ok ] && continue
        echo "---- last 40 lines of [${STEP_NAMES[$i]}]"
        tail -n 40 "$STEP_DIR/${STEP_NAMES[$i]}.log"
    done
fi

# Totals over every runner (nextest summaries and cargo test "test result" lines), as the last
# line: "tests: N passed, N failed, N skipped".
totals() {
    /usr/bin/python3 - "$TEST_LOG" <<'PY'
import re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"tests run: (\d+) passed(?:, (\d+) failed)?(?:, (\d+) skipped)?", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2) or 0); skipped += int(m.group(3) or 0)
        continue
    m = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2)); skipped += int(m.group(3))
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
}
echo
totals
exit $FAILED
