#!/usr/bin/env python3
"""The table of bench/focus.sh: focus_report.py RESULTS.tsv OUT.md TOOL... (restic last).
Rows of RESULTS.tsv: tool, step, repetition, wall s, cpu s, peak RSS KiB, S3 requests."""
import statistics, sys, collections, datetime, platform, os
path, out, *tools = sys.argv[1:]
rows = collections.defaultdict(list)
for line in open(path):
    tool, step, rep, wall, cpu, rss, req = line.rstrip("\n").split("\t")
    rows[(tool, step)].append((float(wall), float(cpu), int(rss), int(req)))
steps = [s for s in ["small-full", "small-unchanged", "small-restore", "s3-full", "s3-restore"]
         if any((t, s) in rows for t in tools)]
med = lambda xs: statistics.median(xs)
lines = ["# Restores from S3 and deep trees of small files", "",
         f"Measured {datetime.date.today()} by `bench/focus.sh` on {os.cpu_count()} cores "
         f"({platform.machine()}), median of each tool's repetitions ("
         + ", ".join(f"{t} {max(len(v) for (tt, _), v in rows.items() if tt == t)}" for t in tools)
         + "; `baseline` is the build given as HF_BASE, the one before a change); "
         "every step after sync, a dropped page cache and one read of its input. "
         "Small files: 200,000 files of 0.5-8 KiB in 36,000 directories, repository and "
         "restore target on local disk. S3: the benchmark's Linux 6.1 tree and 1 GiB page "
         "file, repository in SeaweedFS on loopback (its data on the same disk). "
         "Ratio = restic's time / this build's; requests = S3 requests the server counted.", "",
         "| step | " + " | ".join(tools) + " | " + " | ".join(f"restic ÷ {t}" for t in tools if t != "restic") + " |",
         "|---" * (1 + len(tools) + len([t for t in tools if t != "restic"])) + "|"]
for s in steps:
    cells, ratios = [], []
    r = rows.get(("restic", s))
    for t in tools:
        v = rows.get((t, s))
        if not v:
            cells.append("-"); continue
        wall = med([x[0] for x in v]); rss = max(x[2] for x in v) // 1024; req = med([x[3] for x in v])
        cells.append(f"{wall:.1f} s, {rss} MiB" + (f", {req:.0f} req" if req else ""))
    for t in tools:
        if t == "restic":
            continue
        v = rows.get((t, s))
        ratios.append(f"{med([x[0] for x in r]) / med([x[0] for x in v]):.2f}×" if v and r else "-")
    lines.append(f"| {s} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
lines += ["", "Each repetition's wall time, in the order run:", ""]
for s in steps:
    lines.append(f"- {s}: " + "; ".join(
        f"{t} " + " / ".join(f"{x[0]:.1f}" for x in rows[(t, s)]) + " s"
        for t in tools if (t, s) in rows))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
