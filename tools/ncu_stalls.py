#!/usr/bin/env python3
"""Where a kernel's warps wait, from ncu's source page.

Input: `ncu --import REP --page source --csv --print-source sass > sass.csv` of a report taken
with `--set full --import-source yes` (one kernel). Prints the stall reasons over all samples, the
samples by opcode, and the instructions with the most samples, each with the instructions just
before it (--context), since ncu charges a wait to the instruction the warp is waiting to issue:
a named-barrier wait shows on the instruction after the BAR.SYNC, an mbarrier wait on the branch
of its try-wait loop.

  tools/ncu_stalls.py sass.csv [--top 20] [--context 0]
"""
import argparse
import collections
import csv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--context", type=int, default=0, help="instructions shown before each top one")
    args = ap.parse_args()

    rows = list(csv.reader(open(args.csv)))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    col = {name: i for i, name in enumerate(rows[header])}
    body = [r for r in rows[header + 1:] if len(r) == len(rows[header])]
    reasons = [n for n in rows[header] if n.startswith("stall_") and "Not Issued" not in n]
    samples = lambda r: int(r[col["Warp Stall Sampling (All Samples)"]] or 0)
    source = lambda r: r[col["Source"]].strip()

    total = sum(samples(r) for r in body)
    by_reason = collections.Counter()
    by_op = collections.defaultdict(collections.Counter)
    for r in body:
        words = source(r).split()
        op = (words[1] if words and words[0].startswith("@") else words[0] if words else "?").split(".")[0]
        for n in reasons:
            v = int(r[col[n]] or 0)
            by_reason[n] += v
            by_op[op][n] += v
    print(f"{total} samples")
    for n, v in by_reason.most_common(12):
        print(f"  {n[6:]:22}{v:8} {100 * v / total:5.1f}%")
    print("by opcode:")
    for op, c in sorted(by_op.items(), key=lambda kv: -sum(kv[1].values()))[:15]:
        s = sum(c.values())
        top = ", ".join(f"{k[6:]} {v}" for k, v in c.most_common(3) if v)
        print(f"  {op:12}{s:8} {100 * s / total:5.1f}%  {top}")
    print("top instructions (address tail, samples, executions, SASS, reasons):")
    order = sorted(range(len(body)), key=lambda i: -samples(body[i]))[: args.top]
    for i in order:
        for j in range(max(0, i - args.context), i + 1):
            r = body[j]
            c = sorted(((int(r[col[n]] or 0), n[6:]) for n in reasons), reverse=True)[:2]
            mark = ">" if j == i else " "
            why = " ".join(f"{n} {v}" for v, n in c if v) if j == i else ""
            print(f"{mark} {r[0][-5:]} {samples(r):6} {r[col['Instructions Executed']]:>8}  {source(r)[:70]:70} {why}")
        if args.context:
            print()


if __name__ == "__main__":
    main()
