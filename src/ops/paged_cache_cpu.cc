#include "ops/paged_cache_cpu.h"

#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"

namespace mlaserve::ops::cpu {

void write_paged_rows(std::string_view op, const Tensor& a, const Tensor& b, const Tensor& slot_mapping,
                      Tensor& cache) {
  check_index(op, "slot_mapping", slot_mapping);
  const int64_t t = a.dim(0), wa = a.dim(1), wb = b.dim(1), d = wa + wb;
  check_shape(op, "slot_mapping", slot_mapping, {t});
  const int64_t slots = cache.dim(0) * cache.dim(1);
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < t; ++i) {
    const int64_t slot = index_at(slot_mapping, i);
    if (slot == -1) continue;
    MLA_CHECK(slot >= 0 && slot < slots, "{}: slot_mapping[{}] = {} outside [0, {}) for cache {}", op, i, slot, slots,
              shape_str(cache.shape()));
    std::copy_n(a.data<float>() + i * wa, wa, row.begin());
    std::copy_n(b.data<float>() + i * wb, wb, row.begin() + wa);
    if (cache.dtype() == DType::kF32) {
      std::copy(row.begin(), row.end(), cache.data<float>() + slot * d);
    } else {
      bfloat16* dst = cache.data<bfloat16>() + slot * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = float_to_bf16(row[c]);
    }
  }
}

void gather_paged_rows(std::string_view op, const Tensor& cache, const Tensor& block_table, Tensor& a, Tensor& b) {
  check_host(op, "block_table", block_table);
  MLA_CHECK(block_table.dtype() == DType::kI32 && block_table.ndim() == 1,
            "{}: block_table {} must be I32 [max_blocks], got {}", op, shape_str(block_table.shape()),
            dtype_name(block_table.dtype()));
  const int64_t s = a.dim(0), wa = a.dim(1), wb = b.dim(1), d = wa + wb;
  const int64_t block_size = cache.dim(1), num_blocks = cache.dim(0);
  MLA_CHECK(s <= block_table.dim(0) * block_size, "{}: {} tokens need more than the {} blocks of block_table", op, s,
            block_table.dim(0));
  const int32_t* table = block_table.data<int32_t>();
  std::vector<float> scratch;
  for (int64_t p = 0; p < s; ++p) {
    const int32_t block = table[p / block_size];
    MLA_CHECK(block >= 0 && block < num_blocks, "{}: block_table[{}] = {} outside [0, {})", op, p / block_size, block,
              num_blocks);
    const float* row = f32_span(cache, (block * block_size + p % block_size) * d, d, scratch);
    std::copy_n(row, wa, a.data<float>() + p * wa);
    std::copy_n(row + wa, wb, b.data<float>() + p * wb);
  }
}

void check_decode_batch(std::string_view op, const Tensor& block_table, const Tensor& seq_lens,
                        const Tensor& query_start, int64_t t, int64_t block_size, int64_t num_blocks) {
  for (const Tensor* x : {&block_table, &seq_lens, &query_start}) {
    check_host(op, "block_table/seq_lens/query_start", *x);
    MLA_CHECK(x->dtype() == DType::kI32, "{}: block_table, seq_lens and query_start must be I32, got {}", op,
              dtype_name(x->dtype()));
  }
  MLA_CHECK(block_table.ndim() == 2, "{}: block_table {} must be [B, max_blocks]", op, shape_str(block_table.shape()));
  const int64_t b = block_table.dim(0), max_blocks = block_table.dim(1);
  check_shape(op, "seq_lens", seq_lens, {b});
  check_shape(op, "query_start", query_start, {b + 1});
  const int32_t* qs = query_start.data<int32_t>();
  const int32_t* lens = seq_lens.data<int32_t>();
  const int32_t* table = block_table.data<int32_t>();
  MLA_CHECK(qs[0] == 0 && qs[b] == t, "{}: query_start must run from 0 to T = {}, got {} .. {}", op, t, qs[0], qs[b]);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t q_len = qs[i + 1] - qs[i];
    MLA_CHECK(q_len >= 1, "{}: sequence {} has {} query rows (query_start must increase)", op, i, q_len);
    MLA_CHECK(lens[i] >= q_len, "{}: sequence {} has seq_len {} < q_len {}", op, i, lens[i], q_len);
    const int64_t used = (lens[i] + block_size - 1) / block_size;
    MLA_CHECK(used <= max_blocks, "{}: sequence {} needs {} blocks, block_table {} has {}", op, i, used,
              shape_str(block_table.shape()), max_blocks);
    for (int64_t j = 0; j < used; ++j) {
      const int32_t id = table[i * max_blocks + j];
      MLA_CHECK(id >= 0 && id < num_blocks, "{}: block_table[{}, {}] = {} outside [0, {})", op, i, j, id, num_blocks);
    }
  }
}

}  // namespace mlaserve::ops::cpu
