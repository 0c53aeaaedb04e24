#include "dist/nccl_api.h"

#include <dlfcn.h>

namespace mlaserve::dist {
namespace {

template <typename Fn>
void resolve(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  MLA_CHECK(fn != nullptr, "libnccl.so.2 has no symbol {}", name);
}

NcclApi load() {
  void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  MLA_CHECK(lib != nullptr,
            "cannot load NCCL (libnccl.so.2: {}): splitting a model across GPUs needs it on the library path",
            dlerror());
  NcclApi api{};
  resolve(lib, "ncclGetErrorString", api.get_error_string);
  resolve(lib, "ncclGetVersion", api.get_version);
  resolve(lib, "ncclGetUniqueId", api.get_unique_id);
  resolve(lib, "ncclCommInitRank", api.comm_init_rank);
  resolve(lib, "ncclCommSplit", api.comm_split);
  resolve(lib, "ncclCommDestroy", api.comm_destroy);
  resolve(lib, "ncclCommAbort", api.comm_abort);
  resolve(lib, "ncclCommCount", api.comm_count);
  resolve(lib, "ncclCommUserRank", api.comm_user_rank);
  resolve(lib, "ncclAllReduce", api.all_reduce);
  resolve(lib, "ncclAllGather", api.all_gather);
  resolve(lib, "ncclSend", api.send);
  resolve(lib, "ncclRecv", api.recv);
  resolve(lib, "ncclGroupStart", api.group_start);
  resolve(lib, "ncclGroupEnd", api.group_end);
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const NcclApi& nccl() {
  static const NcclApi api = load();
  return api;
}

}  // namespace mlaserve::dist
