#!/usr/bin/env python3
"""A traced decode step's time on a card of another memory bandwidth, projected.

    tools/project_trace.py TRACE_CSV --copy-gbps MEASURED TARGET

TRACE_CSV is a trace written by `decode_step_bench --trace DIR` (kernel_shares.h: every kernel
of one step with the time charged to it, each instant to the oldest kernel running). The kernels
that stream weights (the dense and expert GEMVs, lm_head among them: names with "gemv", the
router's fused kernel excepted) are taken as bound by memory bandwidth: their charges scale by
MEASURED / TARGET, the copy rates of the traced card and of the other card (GB/s, as the
benchmarks measure them: cudaMemcpy, bytes read + written). Every other charge (attention,
routing, norms) is taken as latency and kept; the instants when no kernel runs (a few us a step)
have no row in the CSV and are left out. Both are approximations in opposite
directions: a streaming kernel's ramp and drain do not scale, and weights streamed beside a
latency-bound kernel (a side stream's) could surface on a slower card; the second estimate,
the step plus the difference of the two cards' floors (--floor-ms, the traced card's floor),
brackets it from the other side.
"""
import argparse
import csv


def streams_weights(kernel: str) -> bool:
    return "gemv" in kernel and "route" not in kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace_csv")
    ap.add_argument("--copy-gbps", nargs=2, type=float, required=True, metavar=("MEASURED", "TARGET"))
    ap.add_argument("--floor-ms", type=float, help="the traced step's floor (decode_step_bench's 'floor ms')")
    args = ap.parse_args()
    measured, target = args.copy_gbps
    ratio = measured / target

    streaming = latency = 0.0
    with open(args.trace_csv, newline="") as f:
        for row in csv.DictReader(f):
            charged = float(row["charged_us"])
            if streams_weights(row["kernel"]):
                streaming += charged
            else:
                latency += charged
    step = streaming + latency
    print(f"traced step {step:.1f} us: weight-streaming kernels {streaming:.1f} us ({streaming / step:.1%}), "
          f"the rest {latency:.1f} us")
    print(f"projected at {target:.0f} GB/s (x{ratio:.3f} on the streaming kernels): {latency + streaming * ratio:.1f} us")
    if args.floor_ms is not None:
        extra_us = args.floor_ms * (ratio - 1.0) * 1000.0
        print(f"step + the floors' difference ({args.floor_ms:.3f} -> {args.floor_ms * ratio:.3f} ms): "
              f"{step + extra_us:.1f} us")


if __name__ == "__main__":
    main()
