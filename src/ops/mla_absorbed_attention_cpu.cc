// mla_absorbed_attention_cpu (ops/mla_absorbed_attention.h): with positions the query's RoPE
// (apply_rope_interleaved_cpu on an f32 copy), then mla_absorb_query_cpu, mla_decode_cpu and
// mla_up_project_output_cpu in a row, with f32 intermediates.
#include <string_view>

#include "ops/cpu_util.h"
#include "ops/mla_absorb.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"
#include "ops/rope.h"

namespace mlaserve::ops {

void mla_absorbed_attention_cpu(const MlaAbsorbedArgs& args, Tensor& o) {
  constexpr std::string_view kOp = "mla_absorbed_attention_cpu";
  MLA_CHECK(args.q.ndim() == 3 && args.kv_cache.ndim() == 3 && o.ndim() == 3,
            "{}: q {} must be [T, n, dn + dr], kv_cache {} [num_blocks, block, dc + dr], o {} [T, n, dv]", kOp,
            shape_str(args.q.shape()), shape_str(args.kv_cache.shape()), shape_str(o.shape()));
  const int64_t t = args.q.dim(0), n = args.q.dim(1), dc = args.w_kv_b.dim(1);
  const int64_t dr = args.kv_cache.dim(2) - dc;
  Tensor q = args.q;
  if (args.positions.defined()) {  // the RoPE first, on a copy (the op leaves q as it is)
    q = args.q.to_f32();
    apply_rope_interleaved_cpu(q, args.positions, args.cos_sin, args.q.dim(2) - dr);
  }
  Tensor q_abs = Tensor::empty({t, n, dc + dr}, DType::kF32);  // [T, n, dc + dr]
  mla_absorb_query_cpu(q, args.w_kv_b, q_abs);
  const MlaDecodeArgs decode{q_abs, args.kv_cache, args.block_table, args.seq_lens, args.query_start,
                             args.softmax_scale};
  MlaDecodeOutputs lat{Tensor::empty({t, n, dc}, DType::kF32), Tensor::empty({t, n}, DType::kF32)};
  mla_decode_cpu(decode, lat);  // o_lat [T, n, dc]
  mla_up_project_output_cpu(lat.out, args.w_kv_b, o);
}

}  // namespace mlaserve::ops
