#include "model/weights.h"

#include <cstring>
#include <map>

#include "ops/fp8_block.h"

namespace mlaserve {

Linear linear_rows(const Linear& w, int64_t begin, int64_t end) {
  Linear out{w.weight.slice(begin, end), {}};
  if (w.is_fp8()) {
    const int64_t b = ops::kFp8BlockSize;
    MLA_CHECK(begin % b == 0 && (end % b == 0 || end == w.out_features()),
              "rows [{}, {}) of an FP8 weight {} do not align with its 128-row scale blocks", begin, end,
              shape_str(w.weight.shape()));
    out.scale_inv = w.scale_inv.slice(begin / b, ops::fp8_num_blocks(end));
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& parts) {
  MLA_CHECK(!parts.empty(), "stack of no tensors");
  Shape shape = parts.front().shape();
  const Device device = parts.front().device();
  for (const Tensor& p : parts) {
    MLA_CHECK(p.defined(), "stack: part {} of {} is an undefined tensor", &p - parts.data(), parts.size());
    MLA_CHECK(p.shape() == shape && p.dtype() == parts.front().dtype() && p.device() == device,
              "stack: parts must share shape, dtype and device ({} vs {})", shape_str(p.shape()), shape_str(shape));
  }
  Shape out_shape = shape;
  out_shape.insert(out_shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = Tensor::empty(out_shape, parts.front().dtype(), device);
  auto* dst = static_cast<char*>(out.raw());
  for (const Tensor& p : parts) {
    copy_bytes(dst, device, p.raw(), device, p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

namespace {
Tensor concat2(const Tensor& a, const Tensor& b) {
  MLA_CHECK(a.ndim() == 2 && b.ndim() == 2 && a.dim(1) == b.dim(1) && a.dtype() == b.dtype() &&
                a.device() == b.device(),
            "concat_rows: {} and {} do not stack", shape_str(a.shape()), shape_str(b.shape()));
  const Device d = a.device();
  Tensor out = Tensor::empty({a.dim(0) + b.dim(0), a.dim(1)}, a.dtype(), d);
  copy_bytes(out.raw(), d, a.raw(), d, a.nbytes());
  copy_bytes(static_cast<char*>(out.raw()) + a.nbytes(), d, b.raw(), d, b.nbytes());
  return out;
}
}  // namespace

Linear concat_rows(const Linear& a, const Linear& b) {
  MLA_CHECK(a.is_fp8() == b.is_fp8(), "concat_rows: mixing FP8 and non-FP8 weights");
  if (!a.is_fp8()) return Linear{concat2(a.weight, b.weight), {}};
  MLA_CHECK(a.out_features() % ops::kFp8BlockSize == 0,
            "concat_rows: FP8 weight of {} rows does not end on a 128-row scale block", a.out_features());
  return Linear{concat2(a.weight, b.weight), concat2(a.scale_inv, b.scale_inv)};
}

void for_each_layer_tensor(LayerWeights& l, const std::function<void(Tensor&)>& fn) {
  auto visit = [&](Tensor& t) {
    if (t.defined()) fn(t);
  };
  auto linear = [&](Linear& lin) {
    visit(lin.weight);
    visit(lin.scale_inv);
  };
  auto mlp = [&](MlpWeights& m) {
    linear(m.gate_up);
    linear(m.down);
  };
  visit(l.input_norm);
  visit(l.post_attn_norm);
  MlaWeights& a = l.attn;
  for (auto* opt : {&a.q_proj, &a.q_a_proj, &a.q_b_proj}) {
    if (*opt) linear(**opt);
  }
  visit(a.q_a_norm);
  linear(a.kv_a_proj);
  visit(a.kv_a_norm);
  linear(a.kv_b_proj);
  linear(a.o_proj);
  visit(a.kv_b_dense);  // may share kv_b_proj.weight's storage
  if (l.mlp) mlp(*l.mlp);
  if (l.moe) {
    visit(l.moe->router);
    visit(l.moe->correction_bias);
    visit(l.moe->experts.gate_up);
    visit(l.moe->experts.down);
    visit(l.moe->experts.gate_up_scale);
    visit(l.moe->experts.down_scale);
    if (l.moe->shared) mlp(*l.moe->shared);
  }
}

void for_each_tensor(ModelWeights& w, const std::function<void(Tensor&)>& fn) {
  for (Tensor* t : {&w.embed, &w.final_norm, &w.lm_head}) {
    if (t->defined()) fn(*t);
  }
  for (LayerWeights& l : w.layers) for_each_layer_tensor(l, fn);
}

namespace {

// Copies every tensor for_each(fn) visits to `device`; tensors that shared storage still do.
template <typename ForEach>
void move_tensors(ForEach for_each, Device device) {
  std::map<const void*, Tensor> moved;
  for_each([&](Tensor& t) {
    if (t.device() == device) return;
    auto [it, fresh] = moved.try_emplace(t.raw());
    if (fresh) it->second = t.to(device);
    t = it->second;
  });
}

}  // namespace

void move_layer(LayerWeights& layer, Device device) {
  move_tensors([&](const auto& fn) { for_each_layer_tensor(layer, fn); }, device);
}

void move_weights(ModelWeights& weights, Device device) {
  move_tensors([&](const auto& fn) { for_each_tensor(weights, fn); }, device);
}

}  // namespace mlaserve
