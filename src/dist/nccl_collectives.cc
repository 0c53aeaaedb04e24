#include "dist/nccl_collectives.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "core/cuda_check.h"
#include "dist/nccl_api.h"

namespace mlaserve::dist {
namespace {

cudaStream_t cuda(Stream s) { return static_cast<cudaStream_t>(s.cuda); }

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::kF32: return ncclFloat32;
    case DType::kBF16: return ncclBfloat16;
    case DType::kF16: return ncclFloat16;
    default: MLA_FAIL("NCCL collectives: unsupported dtype {}", dtype_name(d));
  }
}

void check_gpu(const Tensor& t, const char* what) {
  MLA_CHECK(!t.is_cpu(), "NCCL collectives: {} must be on the GPU", what);
}

}  // namespace

std::unique_ptr<NcclCollectives> NcclCollectives::init_world(const ncclUniqueId& id, int size, int rank) {
  ncclComm_t comm = nullptr;
  MLA_NCCL_CALL(comm_init_rank, &comm, size, id, rank);
  return std::unique_ptr<NcclCollectives>(new NcclCollectives(comm, size, rank));
}

std::unique_ptr<NcclCollectives> NcclCollectives::split(int color, int key) const {
  ncclComm_t comm = nullptr;
  MLA_NCCL_CALL(comm_split, live(), color, key, &comm, nullptr);
  MLA_CHECK(comm != nullptr, "ncclCommSplit gave no communicator");
  int size = 0, rank = 0;
  MLA_NCCL_CALL(comm_count, comm, &size);
  MLA_NCCL_CALL(comm_user_rank, comm, &rank);
  return std::unique_ptr<NcclCollectives>(new NcclCollectives(comm, size, rank));
}

NcclCollectives::~NcclCollectives() {
  if (ncclComm_t c = comm_.load(); c != nullptr) nccl().comm_destroy(c);  // destructor: nothing to report to
}

ncclComm_t NcclCollectives::live() const {
  ncclComm_t c = comm_.load();
  MLA_CHECK(c != nullptr, "the NCCL communicator was aborted: the split run ended (another rank left it)");
  return c;
}

void NcclCollectives::abort() {
  if (peer_) peer_->abort();
  if (ncclComm_t c = comm_.exchange(nullptr); c != nullptr) nccl().comm_abort(c);  // ending: nothing to report to
}

std::string NcclCollectives::enable_peer_all_reduce(size_t max_bytes) {
  std::string why;
  peer_ = PeerAllReduce::create(rank_, size_, max_bytes, live(), why);
  return peer_ ? std::string() : why;
}

void NcclCollectives::all_reduce_sum(Tensor& t, Stream stream) {
  check_gpu(t, "all_reduce_sum's tensor");
  if (peer_ && peer_->fits(t)) {
    (void)live();  // an aborted group fails here, as NCCL's calls do
    return peer_->all_reduce_sum(t, stream);
  }
  MLA_NCCL_CALL(all_reduce, t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), ncclSum, live(),
                cuda(stream));
}

void NcclCollectives::all_gather_columns(const Tensor& in, Tensor& out, Stream stream) {
  check_gpu(in, "all_gather_columns' input");
  check_gpu(out, "all_gather_columns' output");
  MLA_CHECK(in.ndim() == 2 && out.ndim() == 2 && in.dim(0) == out.dim(0) && in.dtype() == out.dtype() &&
                out.dim(1) <= in.dim(1) * size_,
            "all_gather_columns of {} into {} over {} ranks", shape_str(in.shape()), shape_str(out.shape()), size_);
  const int64_t rows = in.dim(0), c = in.dim(1), total = out.dim(1);
  const size_t elem = dtype_size(in.dtype());
  Tensor staged = Tensor::empty({size_, rows, c}, in.dtype(), in.device());  // rank-major
  MLA_NCCL_CALL(all_gather, in.raw(), staged.raw(), static_cast<size_t>(in.numel()), nccl_type(in.dtype()), live(),
                cuda(stream));
  for (int p = 0; p < size_; ++p) {
    const int64_t width = std::min(c, total - p * c);
    if (width <= 0) continue;
    MLA_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(out.raw()) + p * c * elem, total * elem,
                                     static_cast<const char*>(staged.raw()) + p * rows * c * elem, c * elem,
                                     width * elem, rows, cudaMemcpyDeviceToDevice, cuda(stream)));
  }
}

void NcclCollectives::send(const Tensor& t, int peer, Stream stream) {
  check_gpu(t, "send's tensor");
  MLA_NCCL_CALL(send, t.raw(), t.nbytes(), ncclUint8, peer, live(), cuda(stream));
}

void NcclCollectives::recv(Tensor& t, int peer, Stream stream) {
  check_gpu(t, "recv's tensor");
  MLA_NCCL_CALL(recv, t.raw(), t.nbytes(), ncclUint8, peer, live(), cuda(stream));
}

}  // namespace mlaserve::dist
