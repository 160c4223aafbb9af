#!/usr/bin/env python3
"""Sums the kernel durations of an ncu CSV log (gpu-check.sh profile) by kernel name.

Usage: ncu-summary.py NCU.csv [TOP]

Prints the total GPU time, a split into matrix products, attention, elementwise,
reductions/norms and the rest (by kernel name), and the TOP (30) kernels by time.
"""
import collections
import csv
import sys

SCALE = {"nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0}


def family(name):
    n = name.lower()
    if "flash" in n or "fmha" in n or "attention" in n or "efficient" in n:
        return "attention"
    if "gemm" in n or "cutlass" in n or "sm90_xmma" in n or "nvjet" in n or "matmul" in n:
        return "matrix products"
    if "conv" in n or "implicit" in n:
        return "convolutions"
    if "norm" in n or "reduce" in n or "softmax" in n:
        return "reductions and norms"
    if "elementwise" in n or "vectorized" in n or "unrolled" in n or "foreach" in n \
            or "multi_tensor" in n or "copy" in n or "fill" in n:
        return "elementwise, copies and fills"
    return "other"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ncu-summary.py NCU.csv [TOP]")
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with open(sys.argv[1], newline="") as f:
        lines = [line for line in f if not line.startswith("==")]
    rows = csv.DictReader(lines)
    seconds = collections.Counter()
    count = collections.Counter()
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        name = r["Kernel Name"]
        seconds[name] += value * SCALE.get(r.get("Metric Unit", "nsecond"), 1e-9)
        count[name] += 1
    total = sum(seconds.values())
    if total == 0:
        sys.exit("no kernel durations in " + sys.argv[1])
    print(f"{sum(count.values())} kernels, {total * 1e3:.1f} ms of GPU time")
    families = collections.Counter()
    for name, s in seconds.items():
        families[family(name)] += s
    for fam, s in families.most_common():
        print(f"  {fam:32s} {s * 1e3:9.1f} ms  {100 * s / total:5.1f} %")
    print(f"top {top} kernels:")
    for name, s in seconds.most_common(top):
        print(f"  {s * 1e3:8.2f} ms {100 * s / total:5.1f} % {count[name]:6d}x  {name[:90]}")


if __name__ == "__main__":
    main()
