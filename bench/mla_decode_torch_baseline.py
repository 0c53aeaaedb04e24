#!/usr/bin/env python3
"""Plain PyTorch MLA decode at mla_decode_bench's shapes: the "einsum + softmax on a dense
latent cache" baseline of ANCHORS.md, rerun on the same card in the same device call.

    python3 bench/mla_decode_torch_baseline.py OUT.json

Per shape: q [B, q_len * n, 576] and a dense cache [B, ctx, 576] in bf16; scores in bf16
matmul then fp32 softmax, P back to bf16, out = P @ cache[..., :512]. No causal mask among the
q_len tokens (a little less work than the real op). Input sets rotate past 128 MB as in the
C++ benchmark; CUDA events, median of 30 runs after 3 warm-ups. Writes
{"card": ..., "torch": version, "us": {"b128_c4096_h16_q1": us, ...}}; mla_decode_bench
--torch-baseline reads it.
"""
import json
import math
import sys

import torch

SHAPES = [  # (batch, context, heads, q_len): mla_decode_bench's kShapes
    (128, 4096, 16, 1), (128, 4096, 128, 1), (128, 4096, 16, 2), (64, 8192, 16, 1),
    (32, 32768, 16, 1), (1, 4096, 16, 1), (1, 4096, 128, 1), (8, 4096, 16, 1),
]
SCALE = 0.1352338


def decode(q, kv):
    s = torch.matmul(q, kv.transpose(1, 2)).float() * SCALE  # [B, rows, ctx]
    p = torch.softmax(s, dim=-1).to(q.dtype)
    return torch.matmul(p, kv[..., :512])  # [B, rows, 512]


def time_shape(b, ctx, n, q_len):
    set_bytes = b * ctx * 576 * 2 + b * q_len * n * (576 + 512) * 2
    sets = max(1, math.ceil(128e6 / set_bytes))
    inputs = [(torch.randn(b, q_len * n, 576, device="cuda", dtype=torch.bfloat16),
               torch.randn(b, ctx, 576, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]
    for i in range(3):
        decode(*inputs[i % sets])
    times = []
    for i in range(30):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        decode(*inputs[i % sets])
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3)
    del inputs
    torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def main():
    out = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "us": {}}
    for b, ctx, n, q_len in SHAPES:
        key = f"b{b}_c{ctx}_h{n}_q{q_len}"
        out["us"][key] = time_shape(b, ctx, n, q_len)
        print(f"torch {key}: {out['us'][key]:.1f} us", flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
