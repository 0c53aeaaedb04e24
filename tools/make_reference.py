#!/usr/bin/env python3
"""Tiny DeepSeek reference checkpoints and their golden outputs.

Two stages, so that the checkpoints can be made on any machine and only the golden outputs
need PyTorch and Hugging Face transformers (the peer implementation):

  make_reference.py models --out tests/data     numpy + ml_dtypes only: writes for each tiny
                                                model config.json and model.safetensors in the
                                                official Hub layout (per-expert tensor names,
                                                FP8 weights with weight_scale_inv).
  make_reference.py golden --out tests/data     torch + transformers: loads every tiny model
                                                into transformers (eager attention, float32),
                                                records logits and greedy continuations in
                                                golden/<model>.safetensors + .json.

The tiny models keep DeepSeek's real MLA head dimensions (kv_lora_rank 512, rope 64, nope 128,
v 128) with few heads and layers, hidden 128 and a 1024-token vocabulary:

  tiny-v2-lite  no q_lora_rank (single q_proj), softmax greedy routing, 2 shared experts,
                YaRN mscale = mscale_all_dim = 0.707, legacy `rope_scaling` config layout
  tiny-v2       q_lora_rank, group_limited_greedy softmax routing, 2 shared experts,
                routed scaling 16, YaRN mscale 0.707, 4 heads
  tiny-v3       sigmoid noaux_tc routing with a non-zero random correction bias (fp32),
                norm_topk_prob, routed scaling 2.5, `rope_parameters` config layout
  tiny-v3-fp8   tiny-v3's architecture with FP8 E4M3 block-quantised weights (128x128 blocks,
                weight_scale_inv); kv_a_proj_with_mqa (576 rows) has its 64-row edge block

Where transformers is known to deviate from DeepSeek's own model (MODEL_SPEC.md §11), the
golden stage corrects it and records that in golden.json:
  - DeepseekV2Attention.scaling lacks the YaRN m^2 factor in some versions: it is set to
    qk_head_dim^-0.5 * yarn_mscale(factor, mscale_all_dim)^2 on every attention module.
  - Masked groups are filled with 0.0 instead of -inf: harmless here because every softmax
    score and every sigmoid score + (positive) correction bias is > 0.
The FP8 model's golden outputs come from its dequantised weights (MODEL_SPEC §6.2).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

VOCAB = 1024
HIDDEN = 128
KV_LORA = 512
ROPE = 64
NOPE = 128
VDIM = 128
BLOCK = 128  # FP8 weight block (rows and columns)

YARN = {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
        "beta_slow": 1}

MODELS = {
    "tiny-v2-lite": dict(
        model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"], num_attention_heads=2,
        q_lora_rank=None, num_hidden_layers=3, first_k_dense_replace=1, intermediate_size=256,
        moe_intermediate_size=128, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
        n_group=1, topk_group=1, topk_method="greedy", scoring_func="softmax", norm_topk_prob=False,
        routed_scaling_factor=1.0, mscale=0.707, mscale_all_dim=0.707, rope_layout="rope_scaling",
        bos_token_id=0, eos_token_id=1, seed=11),
    "tiny-v2": dict(
        model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"], num_attention_heads=4,
        q_lora_rank=128, num_hidden_layers=3, first_k_dense_replace=1, intermediate_size=256,
        moe_intermediate_size=128, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3,
        n_group=4, topk_group=2, topk_method="group_limited_greedy", scoring_func="softmax",
        norm_topk_prob=False, routed_scaling_factor=16.0, mscale=0.707, mscale_all_dim=0.707,
        rope_layout="rope_scaling", bos_token_id=0, eos_token_id=1, seed=22),
    "tiny-v3": dict(
        model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"], num_attention_heads=2,
        q_lora_rank=128, num_hidden_layers=3, first_k_dense_replace=1, intermediate_size=256,
        moe_intermediate_size=128, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
        n_group=2, topk_group=1, topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True,
        routed_scaling_factor=2.5, mscale=1.0, mscale_all_dim=1.0, rope_layout="rope_parameters",
        bos_token_id=0, eos_token_id=1, seed=33),
}
MODELS["tiny-v3-fp8"] = dict(MODELS["tiny-v3"], seed=44, fp8=True)

# Prompt lengths of the golden tests: 1, a few, a few hundred tokens.
PROMPT_LENGTHS = [1, 5, 300]
GREEDY_TOKENS = 16


def hf_config(spec):
    """The config.json dict of a tiny model, in the layout the spec asks for."""
    rope = dict(YARN, mscale=spec["mscale"], mscale_all_dim=spec["mscale_all_dim"])
    cfg = {
        "architectures": spec["architectures"], "model_type": spec["model_type"],
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": spec["intermediate_size"],
        "moe_intermediate_size": spec["moe_intermediate_size"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_attention_heads": spec["num_attention_heads"],
        "num_key_value_heads": spec["num_attention_heads"],
        "q_lora_rank": spec["q_lora_rank"], "kv_lora_rank": KV_LORA, "qk_nope_head_dim": NOPE,
        "qk_rope_head_dim": ROPE, "v_head_dim": VDIM, "hidden_act": "silu",
        "max_position_embeddings": 4096 * 40, "rms_norm_eps": 1e-6,
        "n_routed_experts": spec["n_routed_experts"], "n_shared_experts": spec["n_shared_experts"],
        "num_experts_per_tok": spec["num_experts_per_tok"], "n_group": spec["n_group"],
        "topk_group": spec["topk_group"], "topk_method": spec["topk_method"],
        "scoring_func": spec["scoring_func"], "norm_topk_prob": spec["norm_topk_prob"],
        "routed_scaling_factor": spec["routed_scaling_factor"],
        "first_k_dense_replace": spec["first_k_dense_replace"], "moe_layer_freq": 1,
        "tie_word_embeddings": False, "bos_token_id": spec["bos_token_id"],
        "eos_token_id": spec["eos_token_id"], "attention_bias": False, "torch_dtype": "bfloat16",
    }
    if spec["rope_layout"] == "rope_scaling":
        cfg["rope_theta"] = 10000
        cfg["rope_scaling"] = rope
    else:
        cfg["rope_parameters"] = dict(rope, rope_theta=10000, rope_type="yarn")
        del cfg["rope_parameters"]["type"]
    if spec.get("fp8"):
        cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                      "activation_scheme": "dynamic", "weight_block_size": [BLOCK, BLOCK]}
    return cfg


def make_weights(spec):
    """Random weights (float32, values rounded to bf16) in the official Hub names and shapes.

    Scales keep activations O(1) so that logits are well separated (greedy comparisons are
    then robust to the rounding differences between implementations)."""
    rng = np.random.default_rng(spec["seed"])
    n = spec["num_attention_heads"]
    qk = NOPE + ROPE
    w = {}

    def linear(name, out, inp, gain=1.0):
        w[name] = rng.standard_normal((out, inp), dtype=np.float32) * (gain / math.sqrt(inp))

    def norm(name, dim):
        w[name] = 1.0 + 0.1 * rng.standard_normal(dim, dtype=np.float32)

    def mlp(prefix, width):
        linear(prefix + "gate_proj.weight", width, HIDDEN)
        linear(prefix + "up_proj.weight", width, HIDDEN)
        linear(prefix + "down_proj.weight", HIDDEN, width)

    w["model.embed_tokens.weight"] = rng.standard_normal((VOCAB, HIDDEN), dtype=np.float32)
    for i in range(spec["num_hidden_layers"]):
        p = f"model.layers.{i}."
        norm(p + "input_layernorm.weight", HIDDEN)
        norm(p + "post_attention_layernorm.weight", HIDDEN)
        a = p + "self_attn."
        if spec["q_lora_rank"] is None:
            linear(a + "q_proj.weight", n * qk, HIDDEN)
        else:
            linear(a + "q_a_proj.weight", spec["q_lora_rank"], HIDDEN)
            norm(a + "q_a_layernorm.weight", spec["q_lora_rank"])
            linear(a + "q_b_proj.weight", n * qk, spec["q_lora_rank"])
        linear(a + "kv_a_proj_with_mqa.weight", KV_LORA + ROPE, HIDDEN)
        norm(a + "kv_a_layernorm.weight", KV_LORA)
        linear(a + "kv_b_proj.weight", n * (NOPE + VDIM), KV_LORA)
        linear(a + "o_proj.weight", HIDDEN, n * VDIM)
        m = p + "mlp."
        if i < spec["first_k_dense_replace"]:
            mlp(m, spec["intermediate_size"])
            continue
        linear(m + "gate.weight", spec["n_routed_experts"], HIDDEN)
        if spec["scoring_func"] == "sigmoid":
            w[m + "gate.e_score_correction_bias"] = rng.uniform(
                0.05, 0.5, spec["n_routed_experts"]).astype(np.float32)
        for e in range(spec["n_routed_experts"]):
            mlp(f"{m}experts.{e}.", spec["moe_intermediate_size"])
        mlp(m + "shared_experts.", spec["n_shared_experts"] * spec["moe_intermediate_size"])
    norm("model.norm.weight", HIDDEN)
    linear("lm_head.weight", VOCAB, HIDDEN, gain=2.0)
    import ml_dtypes
    # Every value is made bf16-representable: the checkpoint stores bf16 and the reference runs
    # on exactly these values in float32. The correction bias stays fp32 as in V3.
    for k in w:
        if not k.endswith("e_score_correction_bias"):
            w[k] = w[k].astype(ml_dtypes.bfloat16).astype(np.float32)
    return w


FP8_SUFFIXES = ("q_a_proj.weight", "q_b_proj.weight", "q_proj.weight", "kv_a_proj_with_mqa.weight",
                "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight",
                "down_proj.weight")


def is_fp8_weight(name):
    return name.endswith(FP8_SUFFIXES)


def quantize_block_fp8(x):
    """[out, in] float32 -> (e4m3 [out, in], scale_inv [ceil(out/128), ceil(in/128)] float32).

    Per 128x128 block (edge blocks partial): scale_inv = amax / 448, q = e4m3(x / scale_inv),
    saturating. scale_inv is the dequantisation multiplier, as in DeepSeek's checkpoints."""
    import ml_dtypes
    out, inp = x.shape
    rows, cols = -(-out // BLOCK), -(-inp // BLOCK)
    scale = np.zeros((rows, cols), np.float32)
    q = np.zeros_like(x)
    for r in range(rows):
        for c in range(cols):
            blk = x[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK]
            s = max(float(np.abs(blk).max()), 1e-12) / 448.0
            scale[r, c] = s
            q[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = np.clip(blk / np.float32(s), -448, 448)
    return q.astype(ml_dtypes.float8_e4m3fn), scale


def dequantize_block_fp8(q, scale):
    x = q.astype(np.float32)
    full = np.repeat(np.repeat(scale, BLOCK, axis=0), BLOCK, axis=1)[:x.shape[0], :x.shape[1]]
    return x * full


def write_safetensors(path, tensors):
    """Minimal safetensors writer (numpy has no bf16/fp8 support in the safetensors package)."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}
    if any(a.dtype not in names for a in tensors.values()):  # the checkpoints' bf16 and fp8
        import ml_dtypes
        names.update({np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3"})
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stage_models(out_dir):
    import ml_dtypes
    for name, spec in MODELS.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        weights = make_weights(spec)
        stored = {}
        for k, v in weights.items():
            if spec.get("fp8") and is_fp8_weight(k):
                q, s = quantize_block_fp8(v)
                stored[k] = q
                stored[k + "_scale_inv"] = s
            elif k.endswith("e_score_correction_bias"):
                stored[k] = v
            else:
                stored[k] = v.astype(ml_dtypes.bfloat16)
        write_safetensors(os.path.join(d, "model.safetensors"), stored)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(hf_config(spec), f, indent=2)
            f.write("\n")
        size = os.path.getsize(os.path.join(d, "model.safetensors"))
        print(f"{name}: {len(stored)} tensors, {size / 1e6:.1f} MB")


def load_float_weights(model_dir):
    """Checkpoint tensors as float32, FP8 weights dequantised (scale_inv multiplied)."""
    from safetensors.numpy import load_file  # noqa: F401 (bf16 needs torch: use torch loader)
    import torch
    from safetensors.torch import load_file as load_torch
    t = load_torch(os.path.join(model_dir, "model.safetensors"))
    out = {}
    for k, v in t.items():
        if k.endswith("_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            out[k] = torch.from_numpy(dequantize_block_fp8(v.float().numpy(), t[k + "_scale_inv"].numpy()))
        else:
            out[k] = v.float()
    return out


def route(spec, w, layer, logits_t):
    """MODEL_SPEC §5's routing of one token from its router logits (float64): the scores s, the
    selection scores with the groups left out at -inf, and the margin of the group choice (inf
    without groups): the gap between the last group kept and the first group left out."""
    p = f"model.layers.{layer}.mlp."
    E, G, TG = spec["n_routed_experts"], spec["n_group"], spec["topk_group"]
    if spec["scoring_func"] == "softmax":
        s = np.exp(logits_t - logits_t.max())
        s /= s.sum()
        choice = s.copy()
        if spec["topk_method"] != "group_limited_greedy":
            return s, choice, np.inf
        gs = choice.reshape(G, -1).max(1)
    else:
        s = 1 / (1 + np.exp(-logits_t))
        choice = s + w[p + "gate.e_score_correction_bias"]
        gs = np.sort(choice.reshape(G, -1), 1)[:, -2:].sum(1)
    keep = np.argsort(-gs, kind="stable")[:TG]
    ranked = np.sort(gs)[::-1]
    group_margin = ranked[TG - 1] - ranked[TG] if TG < G else np.inf
    mask = np.repeat(np.isin(np.arange(G), keep), E // G)
    return s, np.where(mask, choice, -np.inf), group_margin


def moe_reference(spec, w, layer, x):
    """MoE layer of MODEL_SPEC §5 in numpy (float64), from the per-expert checkpoint tensors."""
    p = f"model.layers.{layer}.mlp."
    x = x.astype(np.float64)

    def swiglu(prefix, v):
        g, u, d = (w[f"{prefix}{n}_proj.weight"].astype(np.float64) for n in ("gate", "up", "down"))
        a = v @ g.T
        return (a / (1 + np.exp(-a)) * (v @ u.T)) @ d.T

    k = spec["num_experts_per_tok"]
    logits = x @ w[p + "gate.weight"].astype(np.float64).T
    y = swiglu(p + "shared_experts.", x)
    for t in range(x.shape[0]):
        s, choice, _ = route(spec, w, layer, logits[t])
        idx = np.argsort(-choice, kind="stable")[:k]
        wt = s[idx]
        if spec["scoring_func"] == "sigmoid":
            if spec["norm_topk_prob"]:
                wt = wt / (wt.sum() + 1e-20)
            wt = wt * spec["routed_scaling_factor"]
        elif k > 1 and spec["norm_topk_prob"]:
            wt = wt / (wt.sum() + 1e-20)
        else:
            wt = wt * spec["routed_scaling_factor"]
        for e, we in zip(idx, wt):
            y[t] += we * swiglu(f"{p}experts.{e}.", x[t:t + 1])[0]
    return y


def routing_margins(spec, model, weights, ids):
    """Per token of the prompt `ids`, the smallest routing margin over the MoE layers in the
    transformers forward: the gap between the k-th and the (k+1)-th selection score, or of the
    group choice. Where it is small, bf16 rounding upstream may legitimately route the token to
    another expert, and its logits then differ by O(1)."""
    import torch
    caught, hooks = {}, []
    for i, layer in enumerate(model.model.layers):
        if i >= spec["first_k_dense_replace"]:
            hooks.append(layer.mlp.register_forward_pre_hook(
                lambda m, a, i=i: caught.__setitem__(i, a[0][0].double().numpy())))
    with torch.no_grad():
        model(torch.from_numpy(ids.astype(np.int64))[None])
    for h in hooks:
        h.remove()
    w = {k: v.double().numpy() for k, v in weights.items() if ".gate." in k}
    k = spec["num_experts_per_tok"]
    margins = np.full(len(ids), np.inf)
    for i, x in caught.items():
        logits = x @ w[f"model.layers.{i}.mlp.gate.weight"].T
        for t in range(len(ids)):
            _, choice, group_margin = route(spec, w, i, logits[t])
            ranked = np.sort(choice)[::-1]
            margins[t] = min(margins[t], group_margin, ranked[k - 1] - ranked[k])
    return margins


def bf16_deviation(model, ids, logits):
    """Per prompt row, the largest |logit| difference between the model run in bfloat16 and the
    float32 logits: how far bf16 rounding alone moves that row (a proxy for the GPU's)."""
    import copy
    import torch
    with torch.no_grad():
        low = copy.deepcopy(model).to(torch.bfloat16)(torch.from_numpy(ids.astype(np.int64))[None])
    return np.abs(low.logits[0].float().numpy() - logits).max(1)


MIN_ROUTING_MARGIN = 0.01  # ~3x the router-score shift of ~1% bf16 drift in the hidden states


def logit_rows(n, margins, deviation):
    """The prompt rows whose logits the golden file keeps: all of a short prompt; of a long one,
    the last row and, in each window of 37 rows before it, the row that bf16 rounding moves least
    among those whose routing is no near-tie (margin >= MIN_ROUTING_MARGIN). A near-tie flips
    with rounding, directly or through an earlier token's keys: tiny-v3's row 185 (margin 3e-3)
    took another expert on the GPU once an attention kernel variant moved its output by 0.5%, and
    tiny-v3-fp8's row 253 drifted by 0.46 under chunked prefill, next to tokens 219 and 229
    (margins 2e-3 and 1e-3). Either then differs by O(0.1-1) from the float32 reference."""
    if n <= 8:
        return np.arange(n)
    rows = []
    for w in range(0, n - 1, 37):
        win = np.arange(w, min(w + 37, n - 1))
        clear = win[margins[win] >= MIN_ROUTING_MARGIN]
        pool = clear if len(clear) else win
        rows.append(pool[np.argmin(deviation[pool])])
    return np.array(rows + [n - 1])


def yarn_mscale(scale, m):
    return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0


def build_hf_model(spec, cfg, weights):
    """transformers model (float32, eager) holding exactly `weights`; returns (model, notes)."""
    import torch
    import transformers
    rope = cfg.get("rope_parameters") or dict(cfg["rope_scaling"], rope_theta=cfg["rope_theta"])
    rope = dict(rope)
    rope["rope_type"] = rope.pop("type", rope.get("rope_type", "yarn"))
    kwargs = {k: v for k, v in cfg.items() if k not in ("rope_scaling", "rope_parameters", "rope_theta",
                                                         "architectures", "model_type", "torch_dtype",
                                                         "quantization_config")}
    kwargs["rope_parameters"] = rope
    cls_cfg = transformers.DeepseekV2Config if cfg["model_type"] == "deepseek_v2" else transformers.DeepseekV3Config
    hcfg = cls_cfg(**kwargs)
    hcfg._attn_implementation = "eager"
    cls = (transformers.DeepseekV2ForCausalLM if cfg["model_type"] == "deepseek_v2"
           else transformers.DeepseekV3ForCausalLM)
    torch.manual_seed(0)
    model = cls(hcfg).float().eval()

    # Map the official per-expert names onto transformers' fused expert tensors.
    state = model.state_dict()
    new_state = {}
    E = spec["n_routed_experts"]
    for k in state:
        if k.endswith("mlp.experts.gate_up_proj"):
            p = k[: -len("gate_up_proj")]
            gu = [torch.cat([weights[f"{p}{e}.gate_proj.weight"], weights[f"{p}{e}.up_proj.weight"]], 0)
                  for e in range(E)]
            t = torch.stack(gu)
            new_state[k] = t if state[k].shape == t.shape else t.transpose(1, 2)
        elif k.endswith("mlp.experts.down_proj"):
            p = k[: -len("down_proj")]
            t = torch.stack([weights[f"{p}{e}.down_proj.weight"] for e in range(E)])
            new_state[k] = t if state[k].shape == t.shape else t.transpose(1, 2)
        elif k in weights:
            new_state[k] = weights[k]
        else:
            raise SystemExit(f"{spec}: transformers parameter {k} has no checkpoint tensor")
        if new_state[k].shape != state[k].shape:
            raise SystemExit(f"shape mismatch for {k}: {tuple(new_state[k].shape)} vs {tuple(state[k].shape)}")
    model.load_state_dict(new_state, strict=True)

    notes = {"transformers": transformers.__version__, "torch": torch.__version__}
    # Some transformers versions read DeepseekV2Moe.num_experts without ever setting it.
    for layer in model.model.layers:
        if hasattr(layer.mlp, "gate") and not hasattr(layer.mlp, "num_experts"):
            layer.mlp.num_experts = spec["n_routed_experts"]
            notes["patched_moe_num_experts"] = True
    # The YaRN m^2 softmax correction (MODEL_SPEC §3.3, §11 item 1).
    r = rope
    want = (NOPE + ROPE) ** -0.5
    if r.get("mscale_all_dim"):
        want *= yarn_mscale(r["factor"], r["mscale_all_dim"]) ** 2
    had = model.model.layers[0].self_attn.scaling
    for layer in model.model.layers:
        layer.self_attn.scaling = want
    notes["softmax_scale"] = want
    notes["transformers_softmax_scale_before_fix"] = had
    notes["softmax_scale_patched"] = abs(had - want) > 1e-9

    # Self-check: the first MoE layer through transformers equals MODEL_SPEC §5 computed here
    # from the checkpoint tensors (validates the expert-name mapping and transformers' routing).
    for i, layer in enumerate(model.model.layers):
        if i >= spec["first_k_dense_replace"]:
            x = torch.randn(1, 7, HIDDEN)
            with torch.no_grad():
                got = layer.mlp(x)[0].numpy()
            want_y = moe_reference(spec, {k: v.numpy() for k, v in weights.items()}, i, x[0].numpy())
            err = np.abs(got - want_y).max() / np.abs(want_y).max()
            if err > 1e-4:
                raise SystemExit(f"{spec}: transformers MoE layer {i} differs from the spec (rel {err:.2e})")
            notes["moe_self_check_rel_err"] = float(err)
            break
    return model, notes


def stage_golden(out_dir):
    import torch
    for name, spec in MODELS.items():
        d = os.path.join(out_dir, name)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        weights = load_float_weights(d)
        model, notes = build_hf_model(spec, cfg, weights)
        rng = np.random.default_rng(1000 + spec["seed"])
        golden = {}
        meta = {"model": name, "prompt_lengths": PROMPT_LENGTHS, "greedy_tokens": GREEDY_TOKENS,
                "reference": "transformers eager attention, float32" +
                             (", weights dequantised from FP8" if spec.get("fp8") else ""), **notes}
        for i, n in enumerate(PROMPT_LENGTHS):
            ids = rng.integers(3, VOCAB, size=n).astype(np.int32)
            ids[0] = spec["bos_token_id"]
            with torch.no_grad():
                logits = model(torch.from_numpy(ids.astype(np.int64))[None]).logits[0].float().numpy()
                # Greedy continuation by full forwards without a cache: each step re-runs the whole
                # sequence, so the reference does not depend on transformers' cache path.
                seq = torch.from_numpy(ids.astype(np.int64))[None]
                margins = []
                for _ in range(GREEDY_TOKENS):
                    last = model(seq).logits[0, -1].float()
                    top2 = torch.topk(last, 2).values
                    margins.append(float(top2[0] - top2[1]))
                    seq = torch.cat([seq, last.argmax().view(1, 1)], dim=1)
                gen = model.generate(torch.from_numpy(ids.astype(np.int64))[None], max_new_tokens=GREEDY_TOKENS,
                                     min_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=None,
                                     pad_token_id=0)
            meta[f"greedy_min_margin.{i}"] = min(margins)
            # transformers' own cached generate(), for the record: it is not the reference.
            meta[f"generate_with_cache_agrees.{i}"] = bool(torch.equal(gen[0, n:], seq[0, n:]))
            gen = seq
            margins = routing_margins(spec, model, weights, ids)
            deviation = bf16_deviation(model, ids, logits)
            rows = logit_rows(n, margins, deviation)
            meta[f"logit_rows_min_routing_margin.{i}"] = float(margins[rows].min())
            meta[f"logit_rows_max_bf16_deviation.{i}"] = float(deviation[rows].max())
            golden[f"prompt.{i}"] = ids
            golden[f"logit_rows.{i}"] = rows.astype(np.int32)
            golden[f"logits.{i}"] = logits[rows].astype(np.float32)
            golden[f"greedy.{i}"] = gen[0, n:].numpy().astype(np.int32)
            top2 = np.sort(logits[-1])[-2:]
            print(f"{name}: prompt {n}: greedy {golden[f'greedy.{i}'][:8].tolist()}..., "
                  f"last-row top-2 margin {top2[1] - top2[0]:.4f}")
        # Beside the model folders, not inside them: a checkpoint folder holds only its shards.
        g = os.path.join(out_dir, "golden")
        os.makedirs(g, exist_ok=True)
        write_safetensors(os.path.join(g, name + ".safetensors"), golden)
        with open(os.path.join(g, name + ".json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["models", "golden"])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args()
    if args.stage == "models":
        stage_models(args.out)
    else:
        stage_golden(args.out)


if __name__ == "__main__":
    sys.exit(main())
