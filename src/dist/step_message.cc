#include "dist/step_message.h"

#include <cstring>

#include "core/error.h"

namespace mlaserve::dist {
namespace {

constexpr char kStep = 'S', kRing = 'R', kStop = 'Q';

class Writer {
 public:
  explicit Writer(char kind) { out_.push_back(kind); }
  template <typename T>
  void vec(const std::vector<T>& v) {
    value(static_cast<uint64_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  template <typename T>
  void value(T x) {
    out_.append(reinterpret_cast<const char*>(&x), sizeof(T));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  T value() {
    MLA_CHECK(in_.size() >= sizeof(T), "step message: truncated");
    T x;
    std::memcpy(&x, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return x;
  }
  template <typename T>
  std::vector<T> vec() {
    const auto n = value<uint64_t>();
    MLA_CHECK(n <= in_.size() / sizeof(T), "step message: a vector of {} items in {} bytes", n, in_.size());
    std::vector<T> v(n);
    std::memcpy(v.data(), in_.data(), n * sizeof(T));
    in_.remove_prefix(n * sizeof(T));
    return v;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

std::string encode_step(const ForwardBatch& b, int64_t graph_batch) {
  Writer w(kStep);
  w.value(graph_batch);
  w.vec(b.token_ids);
  w.vec(b.positions);
  w.vec(b.slot_mapping);
  w.vec(b.logit_rows);
  w.value(static_cast<uint64_t>(b.sequences.size()));
  for (const SequenceSlice& s : b.sequences) {
    w.value(s.query_start);
    w.value(s.query_len);
    w.value(s.context_len);
    w.vec(s.block_table);
  }
  return w.take();
}

std::string encode_ring(const std::string& handle) { return std::string(1, kRing) + handle; }
std::string encode_stop() { return std::string(1, kStop); }

StepMessage decode_message(std::string_view m) {
  MLA_CHECK(!m.empty() && (m[0] == kStep || m[0] == kRing || m[0] == kStop), "step message: unknown kind");
  StepMessage out;
  if (m[0] == kStop) {
    MLA_CHECK(m.size() == 1, "step message: a stop message with {} bytes", m.size());
    return out;
  }
  if (m[0] == kRing) {
    out.kind = StepMessage::Kind::kRing;
    out.ring = std::string(m.substr(1));
    return out;
  }
  out.kind = StepMessage::Kind::kStep;
  ForwardBatch& b = out.batch;
  Reader r(m.substr(1));
  out.graph_batch = r.value<int64_t>();
  MLA_CHECK(out.graph_batch >= 0, "step message: a graph of {} sequences", out.graph_batch);
  b.token_ids = r.vec<int32_t>();
  b.positions = r.vec<int32_t>();
  b.slot_mapping = r.vec<int64_t>();
  b.logit_rows = r.vec<int32_t>();
  const auto n = r.value<uint64_t>();
  MLA_CHECK(n <= m.size(), "step message: {} sequences", n);
  for (uint64_t i = 0; i < n; ++i) {
    SequenceSlice s;
    s.query_start = r.value<int32_t>();
    s.query_len = r.value<int32_t>();
    s.context_len = r.value<int32_t>();
    s.block_table = r.vec<int32_t>();
    b.sequences.push_back(std::move(s));
  }
  MLA_CHECK(r.done(), "step message: trailing bytes");
  return out;
}

}  // namespace mlaserve::dist
