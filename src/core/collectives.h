// Collectives: the communication a model split across ranks needs, as an interface so that the
// model graph (a lower layer) calls it without knowing the transport. src/dist implements it
// over NCCL (one process per GPU) and over shared memory between threads (CPU tests).
//
// Every rank of a group calls each collective in the same order with tensors of the same shape
// and dtype; the calls are queued on `stream` (GPU) or run at once (CPU). Ranks are numbered
// 0 .. size() - 1 within the group.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: t becomes the element-wise sum of every rank's t (f32 or bf16, contiguous).
  virtual void all_reduce_sum(Tensor& t, Stream stream) = 0;

  // in [R, c] on every rank -> out [R, C] with out[:, p·c + j] = in of rank p [:, j] for
  // p·c + j < C (C <= size·c: the columns past C of the last ranks are dropped).
  virtual void all_gather_columns(const Tensor& in, Tensor& out, Stream stream) = 0;

  // Point to point (pipeline stages): t travels whole from this rank to `peer`.
  virtual void send(const Tensor& t, int peer, Stream stream) = 0;
  virtual void recv(Tensor& t, int peer, Stream stream) = 0;
};

}  // namespace mlaserve
