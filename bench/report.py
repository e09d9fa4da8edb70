#!/usr/bin/env python3
"""Turn bench/run.sh's measurements into bench/RESULTS.md."""
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

results, limits, total_bytes, total_files, restore_where, hf_v, restic_v, borg_v = sys.argv[1:9]
total_bytes = int(total_bytes)
rows = defaultdict(list)  # (tool, step) -> [(wall, cpu, rss)]
sizes = defaultdict(list)
for line in open(results):
    tool, step, rep, wall, cpu, rss = line.rstrip("\n").split("\t")
    if step == "size":
        sizes[tool].append(int(wall))
    else:
        rows[(tool, step)].append((float(wall), float(cpu), int(rss)))

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")

def gib(b):
    return f"{b / 2**30:.2f} GiB"

def mib(k):
    return f"{k / 1024:.0f} MiB"

steps = ["full", "unchanged", "changed", "restore", "verify"]
tools = ["holdfast", "restic", "borg"]
reps = max(len(v) for v in rows.values())
out = []
out.append("# Benchmark results\n")
out.append(f"Machine: {cpu_model}, {cores} cores, {mem} RAM, {platform.system()} {platform.release()}.  ")
out.append(f"Tools: {hf_v}; {restic_v}; {borg_v}.  ")
out.append(f"Data: Debian `linux-source-6.1` (extracted) plus a 1 GiB database-like page file "
           f"(half random 8 KiB pages, half compressible): {int(total_files):,} files, {gib(total_bytes)}. "
           f"`changed` follows a change to 1% of the files and 2% of the pages.  ")
out.append(f"Each step ran {reps} times per tool, tools in rotating order; figures are min / median. "
           f"Page cache not dropped (every tool reads warm data); restores write to {restore_where}. "
           "Ratios divide the other tool's median "
           "by Holdfast's: above 1 means Holdfast is faster or smaller.\n")

out.append("## Wall time (seconds)\n")
out.append("| step | holdfast | restic | borg | restic / holdfast | borg / holdfast |")
out.append("| --- | --- | --- | --- | --- | --- |")
def med(tool, step, idx):
    v = [r[idx] for r in rows.get((tool, step), [])]
    return (min(v), statistics.median(v)) if v else (None, None)
for s in steps:
    cells = []
    meds = {}
    for t in tools:
        mn, md = med(t, s, 0)
        meds[t] = md
        cells.append("-" if md is None else f"{mn:.2f} / {md:.2f}")
    ratio = lambda t: "-" if not meds[t] or not meds["holdfast"] else f"{meds[t] / meds['holdfast']:.2f}×"
    out.append(f"| {s} | {' | '.join(cells)} | {ratio('restic')} | {ratio('borg')} |")

out.append("\n## CPU time, user + system (seconds, median)\n")
out.append("| step | holdfast | restic | borg |")
out.append("| --- | --- | --- | --- |")
for s in steps:
    out.append(f"| {s} | " + " | ".join("-" if med(t, s, 1)[1] is None else f"{med(t, s, 1)[1]:.2f}" for t in tools) + " |")

out.append("\n## Peak memory (max RSS, median)\n")
out.append("| step | holdfast | restic | borg | holdfast / restic |")
out.append("| --- | --- | --- | --- | --- |")
for s in steps:
    m = {t: med(t, s, 2)[1] for t in tools}
    ratio = "-" if not m["restic"] else f"{m['holdfast'] / m['restic']:.2f}"
    out.append(f"| {s} | " + " | ".join("-" if m[t] is None else mib(m[t]) for t in tools) + f" | {ratio} |")

out.append("\n## Repository size after the three backups\n")
out.append("| holdfast | restic | borg | holdfast / restic |")
out.append("| --- | --- | --- | --- |")
sz = {t: statistics.median(sizes[t]) if sizes[t] else None for t in tools}
out.append("| " + " | ".join("-" if sz[t] is None else gib(sz[t]) for t in tools)
           + f" | {sz['holdfast'] / sz['restic']:.3f} |")

out.append("\n## Physical limits on this machine (same data, single core)\n")
out.append("| operation | seconds | throughput |")
out.append("| --- | --- | --- |")
names = {"read": "read every file (`cat`, page cache)", "sha256": "SHA-256 (`openssl dgst -sha256`)", "zstd1": "zstd level 1 (`zstd -1 -T1`)",
         "write": f"write every file to the restore target (`cp -r` to {restore_where})"}
limit_runs = {}
for line in open(limits):
    name, secs = line.split()
    limit_runs.setdefault(name, []).append(float(secs))
for name, runs in limit_runs.items():
    secs = statistics.median(runs)
    out.append(f"| {names.get(name, name)} | {secs:.2f} | {total_bytes / secs / 2**20:.0f} MiB/s |")
hf_full = med("holdfast", "full", 0)[1]
if hf_full:
    out.append(f"\nHoldfast's full backup ran at {total_bytes / hf_full / 2**20:.0f} MiB/s on both cores.")
hf_restore = med("holdfast", "restore", 0)[1]
write = limit_runs.get("write")
if hf_restore and write:
    out.append(f"Holdfast's restore took {hf_restore / statistics.median(write):.2f}× the (median) time `cp -r` needs to write the same files.")
print("\n".join(out))
