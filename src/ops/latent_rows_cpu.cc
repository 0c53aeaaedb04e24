// latent_rows_cpu (ops/latent_rows.h): the column split of ckv, then rms_norm_cpu,
// apply_rope_interleaved_cpu and write_latent_cache_cpu, as the model graph ran them one by one.
#include <algorithm>
#include <string_view>

#include "ops/cpu_util.h"
#include "ops/latent_cache.h"
#include "ops/latent_rows.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace mlaserve::ops {

void latent_rows_cpu(const LatentRowInputs& in, LatentRowOutputs& out) {
  constexpr std::string_view kOp = "latent_rows_cpu";
  cpu::check_f32(kOp, "ckv", in.ckv);
  cpu::check_f32(kOp, "latent", out.latent);
  cpu::check_f32(kOp, "k_pe", out.k_pe);
  MLA_CHECK(in.ckv.ndim() == 2 && out.latent.ndim() == 2 && out.k_pe.ndim() == 2 &&
                out.latent.dim(0) == in.ckv.dim(0) && out.k_pe.dim(0) == in.ckv.dim(0) &&
                out.latent.dim(1) + out.k_pe.dim(1) == in.ckv.dim(1),
            "{}: ckv {} must be [T, dc + dr] for latent {} [T, dc] and k_pe {} [T, dr]", kOp,
            shape_str(in.ckv.shape()), shape_str(out.latent.shape()), shape_str(out.k_pe.shape()));
  const int64_t t = in.ckv.dim(0), dc = out.latent.dim(1), dr = out.k_pe.dim(1);
  Tensor c = Tensor::empty({t, dc}, DType::kF32);  // [T, dc] the latent before the norm
  const float* src = in.ckv.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    std::copy_n(src + i * (dc + dr), dc, c.data<float>() + i * dc);
    std::copy_n(src + i * (dc + dr) + dc, dr, out.k_pe.data<float>() + i * dr);
  }
  rms_norm_cpu(c, in.norm_weight, in.eps, out.latent);
  apply_rope_interleaved_cpu(out.k_pe, in.positions, in.cos_sin, 0);
  if (out.slot_mapping.defined()) write_latent_cache_cpu(out.latent, out.k_pe, out.slot_mapping, out.cache);
}

}  // namespace mlaserve::ops
