"""Per-kernel GPU time of one profiled training step from Nsight Compute's CSV (device.sh phase kernels, issue 13):
kernels grouped by name, largest first, with their share of the step's summed GPU time. The summed time against the
step's wall time tells how much of the step the GPU is busy (the rest is the host launching work).
Usage: kernel_table.py NCU_CSV [TOP]"""
import csv
import sys
from collections import defaultdict

UNITS = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
with open(path, newline="") as f:
    lines = [line for line in f if line.startswith('"')]
rows = list(csv.DictReader(lines))
totals = defaultdict(lambda: [0, 0.0])
for row in rows:
    if row.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = row["Kernel Name"]
    name = name if len(name) <= 90 else name[:87] + "..."
    value = float(row["Metric Value"].replace(",", "")) * UNITS[row["Metric Unit"]]
    totals[name][0] += 1
    totals[name][1] += value
total = sum(ms for _, ms in totals.values())
launches = sum(n for n, _ in totals.values())
print(f"{launches} kernels, {total:.3f} ms of GPU time summed")
for name, (n, ms) in sorted(totals.items(), key=lambda e: -e[1][1])[:top]:
    print(f"{ms:9.3f} ms {100 * ms / total:5.1f}% {n:5d}x  {name}")
