#!/usr/bin/env bash
# rvs quickstart: no root needed, nothing installed system-wide.
#
#   scripts/quickstart.sh [--once]
#
# Builds rvs (release), starts three demo HTTP backends on 127.0.0.1:9001-9003 and rvsd with
# examples/quickstart.toml (a virtual service on 127.0.0.1:8080, round robin, proxy engine),
# curls the VIP a few times so you see the replies rotate, prints `rvsadm -Ln --stats`, and then
# stays in the foreground until Ctrl-C, which stops everything it started.
# --once: do the same but stop everything right after the demo (for scripts and CI).
#
# While it runs, from another terminal:  target/release/rvsadm -Ln --stats   (or --rate)
# Logs: rvsd's log is in $RUN_DIR/rvsd.log (printed below).
set -euo pipefail
cd "$(dirname "$0")/.."

ONCE=0
for arg in "$@"; do
    case "$arg" in
        --once) ONCE=1 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

VIP=127.0.0.1:8080
BACKENDS=(127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003)
CONFIG=examples/quickstart.toml
TARGET=${CARGO_TARGET_DIR:-target}/release
RUN_DIR=${TMPDIR:-/tmp}/rvs-quickstart-$(id -u)
PIDS=()

if [ -t 1 ]; then
    say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '==> %s\n' "$*"; }
fi
die() { echo "quickstart: $*" >&2; exit 1; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT TERM

# One HTTP GET, with curl if present, else bash's /dev/tcp.
http_get() {
    local host=${1%:*} port=${1##*:}
    if command -v curl >/dev/null; then
        curl -s --max-time 3 "http://$1/"
    else
        exec 3<>"/dev/tcp/$host/$port" || return 1
        printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3
        sed '1,/^\r$/d' <&3
        exec 3>&-
    fi
}

port_busy() {
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs first"
for addr in "$VIP" "${BACKENDS[@]}"; do
    port_busy "$addr" && die "$addr is already in use; stop what listens there and run again"
done

say "building rvs (release; the first build takes a few minutes)"
FEATURES=()
if ! command -v "${CLANG:-clang}" >/dev/null; then
    # The xdp engine's BPF programs need clang; the quickstart only needs the proxy engine.
    echo "(clang not found: building rvsd without the xdp engine, which the quickstart does not use)"
    FEATURES=(--no-default-features)
fi
# One cargo invocation, so shared dependencies are built once.
cargo build --release -p rvsd -p rvsadm -p rvs-demo "${FEATURES[@]}"

mkdir -p "$RUN_DIR"
SOCKET="$RUN_DIR/rvsd.sock"
export RVS_SOCKET="$SOCKET"

say "starting three demo backends"
for i in "${!BACKENDS[@]}"; do
    "$TARGET/rvs-demo-backend" --listen "${BACKENDS[$i]}" --name "backend-$((i + 1))" \
        >"$RUN_DIR/backend-$((i + 1)).log" 2>&1 &
    PIDS+=($!)
done

say "starting rvsd with $CONFIG (log: $RUN_DIR/rvsd.log)"
"$TARGET/rvsd" --config "$CONFIG" --socket "$SOCKET" >"$RUN_DIR/rvsd.log" 2>&1 &
RVSD_PID=$!
PIDS+=("$RVSD_PID")
for _ in $(seq 50); do
    [ -S "$SOCKET" ] && break
    kill -0 "$RVSD_PID" 2>/dev/null || { cat "$RUN_DIR/rvsd.log" >&2; die "rvsd exited"; }
    sleep 0.1
done
[ -S "$SOCKET" ] || { cat "$RUN_DIR/rvsd.log" >&2; die "rvsd did not start"; }

say "six requests to the VIP http://$VIP/ (round robin over the three backends)"
for _ in 1 2 3 4 5 6; do
    reply=$(http_get "$VIP") || die "no reply from $VIP (see $RUN_DIR/rvsd.log)"
    echo "  $reply"
done

say "rvsadm -Ln --stats"
"$TARGET/rvsadm" -Ln --stats

if [ "$ONCE" = 1 ]; then
    say "done (--once): stopping"
    exit 0
fi

cat <<MSG

rvs is running: virtual service $VIP → ${BACKENDS[*]}
  try:     curl http://$VIP/
  watch:   RVS_SOCKET=$SOCKET watch -n1 $TARGET/rvsadm -Ln --stats
  API:     curl --unix-socket $SOCKET http://rvsd/v1/services
  log:     $RUN_DIR/rvsd.log
Press Ctrl-C to stop rvsd and the backends.
MSG
wait "$RVSD_PID"
