#!/usr/bin/env python3
"""The seesaw MLA decode kernel's clock64 timeline, as transition times between its stamps.

A diagnostic, not a build option: stamps.patch (beside this file, made against main at 94966fc)
adds clock64 stamps to warp 0 of each warpgroup of mla_decode_sm90_seesaw_kernel and lets
mla_decode_bench dump one eager call's stamps per shape:

  git apply tools/seesaw_trace/stamps.patch && cmake --build BUILD --target mla_decode_bench
  SEESAW_TRACE_DIR=DIR mla_decode_bench --shapes b128_c4096_h128_q1     (on the GPU machine)
  tools/seesaw_trace/timeline.py DIR/*.bin

For each role (warpgroup 0, warpgroup 1, the producer thread) it prints every transition between
consecutive stamps (tag -> tag: count, mean and median cycles, share of the role's time); the
producer's rows are its waits for each copy's readers. bench/NOTES-mla-decode.md (fifty-fourth
session) reads one.
"""
import collections, statistics, struct, sys

CTAS, SLOTS = 264, 2048
NAMES = {1: "start", 2: "piece", 3: "q_ready", 4: "pvB_prev_done", 5: "S_A_issued", 6: "S_A_done",
         7: "smaxA_done", 8: "PV_A_done", 9: "barB", 10: "piece_pv_done", 11: "sums_xchg", 12: "stored",
         21: "S_B_issued", 22: "barA", 23: "S_B_done", 24: "smaxB_done", 26: "PV_B_done", 27: "PV_A_only",
         31: "p_start"}
for s in range(2):
    for c in range(3):
        NAMES[40 + 3 * s + c] = f"free s{s}c{c}"

def main(path):
    data = open(path, "rb").read()
    n = len(data) // 8
    v = struct.unpack(f"<{n}Q", data)
    spans = []
    trans = [collections.defaultdict(list) for _ in range(3)]
    for cta in range(CTAS):
        for role in range(3):
            base = (cta * 3 + role) * SLOTS
            ev = [(x >> 56, x & ((1 << 56) - 1)) for x in v[base:base + SLOTS] if x]
            if not ev:
                continue
            if role == 0:
                spans.append(ev[-1][1] - ev[0][1])
            for (t0, c0), (t1, c1) in zip(ev, ev[1:]):
                key = (NAMES.get(t0, t0), NAMES.get(t1, t1)) if role < 2 else ("", NAMES.get(t1, t1))
                trans[role][key].append(c1 - c0)
    if not spans:
        print("no stamps"); return
    print(f"{path}: {len(spans)} CTAs, wg0 span cycles p50 {statistics.median(spans):.0f} max {max(spans)}")
    for role in range(3):
        tot = sum(sum(x) for x in trans[role].values())
        print(f" role {role} ({'wg0 wg1 producer'.split()[role]}):  transition  count  mean  p50  share")
        for key, xs in sorted(trans[role].items(), key=lambda kv: -sum(kv[1]))[:18]:
            print(f"   {key[0]:>14} -> {key[1]:<14} {len(xs):6} {statistics.mean(xs):8.0f} {statistics.median(xs):8.0f} "
                  f"{100 * sum(xs) / tot:5.1f}%")

for p in sys.argv[1:]:
    main(p)
