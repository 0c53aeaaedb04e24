// The NCCL entry points mlaserve uses, resolved from libnccl.so.2 with dlopen on first use.
// Loading at run time keeps NCCL out of the link of every binary: only a process that splits a
// model across GPUs needs the library (found through the loader's usual search path:
// LD_LIBRARY_PATH, the ld.so cache). Every call goes through MLA_NCCL_CALL, which throws with
// the call and NCCL's own error string.
#pragma once

#include <nccl.h>

#include "core/error.h"

namespace mlaserve::dist {

struct NcclApi {
  decltype(&ncclGetErrorString) get_error_string;
  decltype(&ncclGetVersion) get_version;
  decltype(&ncclGetUniqueId) get_unique_id;
  decltype(&ncclCommInitRank) comm_init_rank;
  decltype(&ncclCommSplit) comm_split;
  decltype(&ncclCommDestroy) comm_destroy;
  decltype(&ncclCommAbort) comm_abort;
  decltype(&ncclCommCount) comm_count;
  decltype(&ncclCommUserRank) comm_user_rank;
  decltype(&ncclAllReduce) all_reduce;
  decltype(&ncclAllGather) all_gather;
  decltype(&ncclSend) send;
  decltype(&ncclRecv) recv;
  decltype(&ncclGroupStart) group_start;
  decltype(&ncclGroupEnd) group_end;
};

// Loads the library once; throws naming the library when it cannot be found.
const NcclApi& nccl();

}  // namespace mlaserve::dist

#define MLA_NCCL_CALL(fn, ...)                                                                     \
  do {                                                                                             \
    const ::mlaserve::dist::NcclApi& mla_api_ = ::mlaserve::dist::nccl();                          \
    ncclResult_t mla_res_ = mla_api_.fn(__VA_ARGS__);                                              \
    if (mla_res_ != ncclSuccess) [[unlikely]] {                                                    \
      MLA_FAIL("NCCL error {} ({}) in nccl {}", static_cast<int>(mla_res_), mla_api_.get_error_string(mla_res_), \
               #fn);                                                                               \
    }                                                                                              \
  } while (0)
