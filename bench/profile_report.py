#!/usr/bin/env python3
"""Splits a CPU-1 profile (`perf script -F time,period,ip,sym` on stdin) by the measured runs of
the phase log, sorts each busy sample into one cost category by its call stack, and prints one
table per run: the share of CPU 1's busy time per category, and that share of the run's
measured CPU cost per request (from the comparison's JSON). Called by bench/profile.sh.

    profile_report.py proxy|packet-nat|packet-dr PHASES JSON < perf-script-output
"""

import bisect
import json
import re
import sys
from collections import Counter, defaultdict

# (category, compiled stack pattern): the first category whose pattern matches any frame of the sample
# wins, so the order matters — e.g. waking the next hop happens inside the TCP send path and is
# counted as waking, not as sending.
PACKET = [
    ("waking the next hop's NAPI thread (other CPU)", re.compile(r"^(__napi_schedule|napi_schedule|try_to_wake_up)$")),
    ("NAPI thread going to sleep / woken", re.compile(r"^(schedule|__schedule|finish_task_switch.*)$")),
    ("XDP program with its helpers and maps", re.compile(r"^bpf_prog_")),
    ("veth: copying cloned frames for XDP", re.compile(r"^(skb_pp_cow_data|veth_convert_skb_to_xdp_buff)$")),
    ("netfilter (conntrack, NAT)", re.compile(r"^(nf_|nft_|__nf_)")),
    ("IP receive, route, forward, output", re.compile(r"^(ip_|ip6_|fib_|__netif_receive_skb|netif_receive_skb)")),
    ("GRO", re.compile(r"^(dev_gro_receive|gro_|napi_gro_)")),
    ("veth driver, skb building and freeing", re.compile(r"^(veth_|tcp_wfree|__sock_wfree|sock_wfree|skb_release|kfree_skb|consume_skb|napi_consume_skb|__kfree_skb|skb_free_head|build_detached_freelist|kmem_cache_free|__slab_free|__napi_build_skb|__build_skb_around|napi_skb_cache)")),
]
PROXY = [
    ("waking the peer process (other CPU)", re.compile(r"^(try_to_wake_up|__wake_up_sync_key|sock_def_readable)$")),
    ("accept / connect / close", re.compile(r"^(__sys_accept4|do_accept|__sys_connect|tcp_v4_connect|tcp_v6_connect|__fput|sock_close|tcp_close|inet_release)$")),
    ("TCP send (with loopback delivery to the peer)", re.compile(r"^(tcp_sendmsg|tcp_sendmsg_locked|splice_to_socket|__tcp_push_pending_frames|tcp_write_xmit)$")),
    ("TCP receive", re.compile(r"^(tcp_recvmsg|tcp_recvmsg_locked|tcp_splice_read|tcp_read_sock)$")),
    ("epoll wait / going to sleep", re.compile(r"^(do_epoll_wait|ep_poll|schedule|__schedule)$")),
    ("syscall entry and exit", re.compile(r"^(entry_SYSCALL_64.*|do_syscall_64|syscall_exit_to_user_mode.*)$")),
]
IDLE = re.compile(r"^(do_idle|cpu_startup_entry|cpuidle_idle_call|default_idle_call)$")


def read_phases(path):
    """[(start_s, end_s, label)] from the phase log (CLOCK_MONOTONIC nanoseconds)."""
    open_at = {}
    spans = []
    for line in open(path):
        what, ns, label = line.rstrip("\n").split(" ", 2)
        t = int(ns) / 1e9
        if what == "start":
            open_at[label] = t
        elif label in open_at:
            spans.append((open_at.pop(label), t, label))
    spans.sort()
    return spans


def samples(stream):
    """(comm, time_s, period_ns, [(address, symbol), ...]) per sample, innermost frame first,
    from `perf script -F comm,time,period,ip,sym`."""
    head, frames = None, []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if head:
                yield head[0], head[1], head[2], frames
            head, frames = None, []
            continue
        m = re.match(r"^(\S.*?)\s+([\d.]+):\s+(\d+)\s*$", line)
        if m:
            head, frames = (m.group(1), float(m.group(2)), int(m.group(3))), []
        elif head:
            parts = line.split(None, 1)
            sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1]) if len(parts) > 1 else "[unknown]"
            frames.append((parts[0], sym))
    if head:
        yield head[0], head[1], head[2], frames


# Processes that are not the subject's (the profiler, the harness, an operator's shell).
NOT_SUBJECT = re.compile(r"^(perf|perf-exec|python3?|sh|bash|sleep|pgrep|awk|sed|grep|cargo|rustc|ip|taskset|ethtool|tc|nft|sysctl|kworker/.*|kdamond.*)$")


def ours(comm, frames, table):
    """Whether a sample is the subject's work: the director's NAPI kthreads (packet paths; perf
    may name them `kthreadd`, so they are told by their stack), or the balancer process (proxy:
    CPU 1 holds only it, anything else there is a stray process)."""
    if table is PACKET:
        return any(s == "napi_threaded_poll" for _, s in frames)
    return not NOT_SUBJECT.match(comm)


def category(frames, table):
    if frames and not frames[0][0].startswith("ffffffff") and table is PROXY:
        return "userspace"
    # BPF JIT images have no symbol when perf cannot resolve the program (it was unloaded before
    # `perf script` ran): they live in the module area, where every module symbol does resolve.
    names = ["bpf_prog_" if a.startswith("ffffffffc") and s == "[unknown]" else s for a, s in frames]
    for name, rx in table:
        if any(rx.match(n) for n in names):
            return name
    return "other kernel work"


def cost_per_request(path, cmp):
    """{label: (value, unit)} — medians of the comparison's CPU-per-request figures."""
    metric, unit = (
        ("cpu_per_1000_requests", "ms per 1,000 requests")
        if cmp == "proxy"
        else ("director_cpu_per_request", "µs per request")
    )
    out = {}
    try:
        series = json.load(open(path))["series"]
    except (OSError, ValueError, KeyError):
        return out
    for s in series:
        vals = sorted(v for v in s.get("values", []) if v == v)
        if s.get("metric") == metric and vals:
            out[f"{s['subject']} / {s['scenario']}"] = (vals[len(vals) // 2], unit)
    return out


def main():
    cmp, phases_path, json_path = sys.argv[1:4]
    table = PROXY if cmp == "proxy" else PACKET
    spans = read_phases(phases_path)
    starts = [s for s, _, _ in spans]
    busy = defaultdict(Counter)
    idle = Counter()
    length = Counter()
    for start, end, label in spans:
        length[label] += (end - start) * 1e9
    other = defaultdict(Counter)
    top = defaultdict(Counter)
    stray = Counter()
    for comm, t, period, frames in samples(sys.stdin):
        i = bisect.bisect_right(starts, t) - 1
        if i < 0 or t > spans[i][1]:
            continue
        label = spans[i][2]
        if any(IDLE.match(s) for _, s in frames):
            idle[label] += period
            continue
        if not ours(comm, frames, table):
            stray[label] += period
            continue
        cat = category(frames, table)
        busy[label][cat] += period
        if cat == "other kernel work" and frames:
            other[label][frames[0][1]] += period
        if frames:
            top[label][frames[0][1]] += period
    costs = cost_per_request(json_path, cmp)
    print(f"# Where CPU 1's time goes: {cmp}\n")
    print("Shares of CPU 1's busy samples in the measured runs (all rounds together); the last")
    print("column applies each share to the run's median CPU per request from the JSON.\n")
    for label in sorted(busy):
        total = sum(busy[label].values())
        if not total:
            continue
        cost, unit = costs.get(label, (None, ""))
        # cpu-clock on one CPU may not sample the idle task: busy share from the runs' length.
        load = min(1.0, total / (total + idle[label]), total / length[label])
        print(f"## {label}\n")
        print(f"CPU 1 busy {load:.0%} of the runs with the subject's work; {total / 1e9:.2f} s "
              f"sampled; left out (other processes on CPU 1): {stray[label] / 1e9:.2f} s"
              + (f"; measured cost {cost:.3g} {unit}" if cost is not None else "") + "\n")
        print("| category | share | of the cost |")
        print("|---|---|---|")
        for name, p in busy[label].most_common():
            part = f"{cost * p / total:.3g}" if cost is not None else "–"
            print(f"| {name} | {p / total:.1%} | {part} |")
        hot = ", ".join(f"{s} {p / total:.1%}" for s, p in top[label].most_common(6))
        print(f"\nHottest functions (own time): {hot}\n")
        rest = ", ".join(f"{s} {p / total:.1%}" for s, p in other[label].most_common(8))
        print(f"In 'other kernel work': {rest}\n")


if __name__ == "__main__":
    main()
