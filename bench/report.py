#!/usr/bin/python3
"""Turns the JSON files written by the comparisons (bench/*.sh) into one Markdown report with
tables of medians and pair-by-pair ratios, plus one PNG chart per question.

    report.py --in DIR --out REPORT.md --charts CHART_DIR   # write report and charts
    report.py --in DIR --check                              # smoke: every series has numbers

Each JSON file: {"comparison", "title", "mode", "references": [subjects ratios are taken
against], "peers": {name: version}, "params": {...}, "skipped": {subject: reason}, "notes": [...],
"series": [{"subject", "scenario", "metric", "unit", "better", "values": [one per round]}],
"pairs": [[subject, reference], ...] (optional: when present, exactly these ratios are shown)}.
"""

import argparse
import glob
import json
import math
import os
import platform
import statistics
import subprocess
import sys

# Figures measured on this kind of machine, quoted by the issues (same method, same units).
ANCHORS = {
    ("proxy", "haproxy", "keep-alive", "cpu_per_1000_requests"): 14.4,
    ("proxy", "haproxy", "new connection per request", "cpu_per_1000_requests"): 73.2,
    ("proxy", "haproxy", "idle connections", "memory_per_connection"): 3.4,
    ("proxy", "nginx-stream", "keep-alive", "cpu_per_1000_requests"): 13.2,
    ("proxy", "nginx-stream", "new connection per request", "cpu_per_1000_requests"): 68.0,
    ("proxy", "nginx-stream", "idle connections", "memory_per_connection"): 9.4,
    ("packet_nat", "nftables-dnat", "keep-alive", "director_cpu_per_request"): 7.1,
    ("packet_nat", "nftables-dnat", "new connection per request", "director_cpu_per_request"): 40.4,
    ("packet_nat", "forward-conntrack", "keep-alive", "director_cpu_per_request"): 6.3,
    ("packet_nat", "forward-conntrack", "new connection per request", "director_cpu_per_request"): 33.1,
    ("packet_nat", "forward", "keep-alive", "director_cpu_per_request"): 5.5,
    ("packet_nat", "forward", "new connection per request", "director_cpu_per_request"): 26.6,
}

METRIC_TITLES = {
    "cpu_per_1000_requests": "Balancer CPU time per 1,000 requests",
    "director_cpu_per_request": "Director CPU time per request (NAPI kthreads)",
    "cpu1_busy_per_request": "CPU 1 busy time per request (cross-check, includes other load)",
    "director_userspace_cpu_per_request": "rvs director process's own CPU time per request (userspace upkeep)",
    "memory_for_connections": "Director memory set aside for connection state",
    "requests_per_sec": "Requests per second",
    "p50_latency": "Median latency",
    "p99_latency": "99th-percentile latency",
    "throughput": "Bulk throughput",
    "memory_per_connection": "Memory per idle connection",
}


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def finite(values):
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def load(indir):
    docs = []
    for path in sorted(glob.glob(os.path.join(indir, "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        doc["_file"] = os.path.basename(path)
        docs.append(doc)
    return docs


def questions(doc):
    """(metric, unit, better) in first-seen order, and scenarios per metric."""
    seen = {}
    for s in doc["series"]:
        seen.setdefault(s["metric"], (s["unit"], s.get("better", "")))
    return seen


def series_of(doc, metric):
    return [s for s in doc["series"] if s["metric"] == metric]


def ratio_rows(doc, metric):
    """Pair-by-pair ratios: subject / reference per round (same round index), median of those."""
    rows = []
    if doc.get("pairs"):
        by_key = {(s["subject"], s["scenario"]): s["values"] for s in series_of(doc, metric)}
        scenarios = list(dict.fromkeys(s["scenario"] for s in series_of(doc, metric)))
        for subj, ref in doc["pairs"]:
            for scen in scenarios:
                a, b = by_key.get((subj, scen)), by_key.get((ref, scen))
                if not a or not b:
                    continue
                per_round = [x / y for x, y in zip(a, b) if finite([x, y]) == [x, y] and y]
                if per_round:
                    rows.append((scen, subj, ref, statistics.median(per_round), len(per_round)))
        return rows
    by_key = {(s["subject"], s["scenario"]): s["values"] for s in series_of(doc, metric)}
    scenarios = list(dict.fromkeys(s["scenario"] for s in series_of(doc, metric)))
    subjects = list(dict.fromkeys(s["subject"] for s in series_of(doc, metric)))
    for ref in doc.get("references", []):
        for subj in subjects:
            if subj == ref or (subj in doc.get("references", []) and
                               doc["references"].index(subj) > doc["references"].index(ref)):
                continue
            for scen in scenarios:
                a, b = by_key.get((subj, scen)), by_key.get((ref, scen))
                if not a or not b:
                    continue
                per_round = [x / y for x, y in zip(a, b) if finite([x, y]) == [x, y] and y]
                if per_round:
                    rows.append((scen, subj, ref, statistics.median(per_round), len(per_round)))
    return rows


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    def out(cmd):
        try:
            here = os.path.dirname(os.path.abspath(__file__))
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=here).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    return {
        "CPU": f"{cpu} × {os.cpu_count()}",
        "memory": mem,
        "kernel": platform.release(),
        "OS": out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "rustc": out(["rustc", "--version"]),
        "rvs commit": out(["git", "rev-parse", "--short", "HEAD"]),
    }


def chart(doc, metric, unit, better, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ss = series_of(doc, metric)
    scenarios = list(dict.fromkeys(s["scenario"] for s in ss))
    subjects = list(dict.fromkeys(s["subject"] for s in ss))
    width = 0.8 / max(1, len(subjects))
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(scenarios) + 2), 4.2))
    for i, subj in enumerate(subjects):
        meds, lo, hi = [], [], []
        for scen in scenarios:
            vals = finite(next((s["values"] for s in ss if s["subject"] == subj and s["scenario"] == scen), []))
            m = statistics.median(vals) if vals else float("nan")
            meds.append(m)
            lo.append(m - min(vals) if vals else 0)
            hi.append(max(vals) - m if vals else 0)
        xs = [j + (i - (len(subjects) - 1) / 2) * width for j in range(len(scenarios))]
        bars = ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=subj)
        ax.bar_label(bars, labels=[fmt(m) for m in meds], fontsize=7, padding=2)
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_xlabel("scenario")
    ax.set_ylabel(f"{METRIC_TITLES.get(metric, metric)} ({unit})", fontsize=8)
    ax.set_title(f"{doc['comparison']}: {METRIC_TITLES.get(metric, metric)} — {better} is better\n"
                 f"median of {doc['params'].get('rounds', '?')} runs, bars = min..max", fontsize=9)
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(doc, chart_dir, chart_rel):
    lines = [f"## {doc['title']}", ""]
    lines.append(f"Mode `{doc['mode']}`; result file `{doc['_file']}`.")
    lines.append("")
    for k, v in doc.get("params", {}).items():
        lines.append(f"- {k}: {v}")
    for k, v in doc.get("peers", {}).items():
        lines.append(f"- peer {k}: {v}")
    for k, v in doc.get("skipped", {}).items():
        lines.append(f"- **not measured: {k}** — {v}")
    lines.append("")
    for metric, (unit, better) in questions(doc).items():
        title = METRIC_TITLES.get(metric, metric)
        lines += [f"### {title} ({unit}, {better} is better)", "",
                  "| scenario | subject | median | min | max | runs | anchor |", "|---|---|---|---|---|---|---|"]
        for s in series_of(doc, metric):
            vals = finite(s["values"])
            med = statistics.median(vals) if vals else None
            anchor = ANCHORS.get((doc["comparison"], s["subject"], s["scenario"], metric))
            lines.append(f"| {s['scenario']} | {s['subject']} | **{fmt(med)}** | {fmt(min(vals) if vals else None)} | "
                         f"{fmt(max(vals) if vals else None)} | {len(vals)} | {fmt(anchor)} |")
        rows = ratio_rows(doc, metric)
        if rows:
            lines += ["", "| scenario | ratio | median of per-round ratios |", "|---|---|---|"]
            for scen, subj, ref, r, n in rows:
                lines.append(f"| {scen} | {subj} / {ref} | **{r:.2f}×** ({n} rounds) |")
        if chart_dir:
            name = f"{doc['comparison']}-{metric}.png"
            chart(doc, metric, unit, better, os.path.join(chart_dir, name))
            lines += ["", f"![{title}]({chart_rel}/{name})"]
        lines.append("")
    if doc.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    return lines


def check(docs):
    problems = []
    if not docs:
        problems.append("no result files")
    for d in docs:
        if not d.get("series"):
            problems.append(f"{d['_file']}: no series")
        for s in d.get("series", []):
            if not finite(s["values"]):
                problems.append(f"{d['_file']}: {s['subject']} / {s['scenario']} / {s['metric']} has no number")
        for ref in d.get("references", []):
            if ref not in {s["subject"] for s in d.get("series", [])} and ref not in d.get("skipped", {}):
                problems.append(f"{d['_file']}: reference {ref} neither measured nor skipped")
        for k, v in d.get("skipped", {}).items():
            print(f"note: {d['_file']}: {k} not measured: {v}")
    for p in problems:
        print(f"FAIL: {p}")
    n = sum(len(d.get("series", [])) for d in docs)
    print(f"bench smoke check: {len(docs)} comparison(s), {n} series, {len(problems)} problem(s)")
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="indir", required=True)
    ap.add_argument("--out")
    ap.add_argument("--charts")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    docs = load(a.indir)
    if a.check:
        return check(docs)
    if not a.out:
        ap.error("--out is required unless --check")
    if a.charts:
        os.makedirs(a.charts, exist_ok=True)
    rel = os.path.relpath(a.charts, os.path.dirname(os.path.abspath(a.out))) if a.charts else ""
    lines = ["# rvs benchmark report", "", "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine().items()]
    lines += ["", "Method: see `bench/README.md`. Ratios are medians of per-round ratios (runs made moments apart).",
              "Anchors are the figures quoted by the issues for this kind of machine.", ""]
    for d in docs:
        lines += section(d, a.charts, rel)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return check(docs)


if __name__ == "__main__":
    sys.exit(main())
