#!/usr/bin/env python3
"""How far apart fp32 summation order alone puts the experts' grouped GEMV and grouped GEMM (BF16).

Host emulation (numpy), no GPU. Both paths multiply the same bf16 values exactly and sum in fp32
on the tensor cores, then round the SwiGLU hidden state and the output to bf16 the same way; they
differ only in the order of the fp32 sums:
  - the grouped GEMM (moe_grouped_gemm_sm80.cuh decode tiles): one accumulator per output, one
    mma step (16 products) after the other along K;
  - the grouped GEMV (moe_experts_gemv.cuh): a row's 128-byte units (64 bf16, 4 mma steps) dealt
    to 8 warps round robin (warp w: units w, w + 8, ...), each warp one accumulator, the 8 warp
    sums added in warp order.
A step's rounding is modelled as round-to-nearest (--rounding rne) or toward zero (rz: what the
tensor cores' fp32 accumulation is reported to do). Prints, for R rows of shape H x Im with
uniform(-1, 1) bf16 inputs (moe_experts_cuda_test's fill_random), the share of hidden elements
that round differently, and the relative L2 between the two outputs (over all rows, worst row):
moe_experts_cuda_test's kPathsRelL2 / kPathsRow bound that value.

  python3 tools/moe_gemv_order_emulation.py --seed 1 --hidden 7168 --inter 2048 --rounding rz
"""
import argparse

import numpy as np


def bf16(a):
    """Round-to-nearest-even to bf16, returned as float32."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def step_sums(x, w):
    """[R, N, K / 16]: the sums of 16 products an mma step adds (exact in float64)."""
    r, k = x.shape
    n = w.shape[0]
    return np.einsum("rks,nks->rnk", x.reshape(r, k // 16, 16).astype(np.float64),
                     w.reshape(n, k // 16, 16).astype(np.float64))


def make_round(rz):
    def to_f32(v):
        r = v.astype(np.float32)
        if rz:
            over = np.abs(r.astype(np.float64)) > np.abs(v)
            r[over] = np.nextafter(r[over], np.float32(0))
        return r
    return to_f32


def chain(s, to_f32):
    """One fp32 accumulator over the steps in order (the grouped GEMM)."""
    acc = np.zeros(s.shape[:2], np.float32)
    for i in range(s.shape[2]):
        acc = to_f32(acc.astype(np.float64) + s[:, :, i])
    return acc


def warps(s, to_f32):
    """8 warps' chains over units w, w + 8, ... (4 steps a unit), summed in warp order (the GEMV)."""
    units = s.shape[2] // 4
    total = np.zeros(s.shape[:2], np.float32)
    for w in range(8):
        steps = [4 * u + q for u in range(w, units, 8) for q in range(4)]
        total = (total + chain(s[:, :, steps], to_f32)).astype(np.float32)
    return total


def swiglu(g, u):  # g / (1 + exp(-g)) * u in fp32, rounded once (both kernels' epilogue)
    with np.errstate(over="ignore"):
        return bf16((g / (np.float32(1) + np.exp(-g))) * u)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=7168, help="H (V3 7168, V2-Lite 2048)")
    ap.add_argument("--inter", type=int, default=2048, help="Im (V3 2048, V2-Lite 1408)")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--rounding", choices=["rne", "rz"], default="rz")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    h, im, rows = a.hidden, a.inter, a.rows
    x = bf16(rng.uniform(-1, 1, (rows, h)))
    w_gate_up = bf16(rng.uniform(-1, 1, (2 * im, h)))
    w_down = bf16(rng.uniform(-1, 1, (h, im)))
    to_f32 = make_round(a.rounding == "rz")
    res = {}
    for name, order in (("gemm", chain), ("gemv", warps)):
        hidden = np.concatenate([
            (lambda gu: swiglu(gu[:, :im], gu[:, im:]))(order(step_sums(x[r:r + 4], w_gate_up), to_f32))
            for r in range(0, rows, 4)])
        out = np.concatenate([bf16(order(step_sums(hidden[r:r + 4], w_down), to_f32)) for r in range(0, rows, 4)])
        res[name] = (hidden, out.astype(np.float64))
    flips = np.mean(res["gemv"][0] != res["gemm"][0])
    d, ref = res["gemv"][1] - res["gemm"][1], res["gemm"][1]
    rel = np.sqrt((d ** 2).sum() / (ref ** 2).sum())
    worst = np.sqrt((d ** 2).sum(1) / (ref ** 2).sum(1)).max()
    print(f"seed {a.seed} H {h} Im {im} rows {rows} {a.rounding}: hidden elements differing {flips:.3%}; "
          f"output rel L2 gemv vs gemm {rel:.3e}, worst row {worst:.3e}")


if __name__ == "__main__":
    main()
