#include "tokenizer/bpe.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {
namespace {

// A symbol of the word being merged: a doubly linked list over a flat array.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

// A pair that may merge: the symbol at `pos` with its right neighbour.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t merged_id;
};

// std::push_heap builds a max-heap; "greater" puts the lowest (rank, pos) on top.
bool heap_after(const Candidate& a, const Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

struct MergeScratch {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

}  // namespace

BpeModel::BpeModel(const BpeSpec& spec) : merges_(spec.merges.size()) {
  int32_t max_id = -1;
  vocab_.reserve(spec.vocab.size());
  for (const auto& [token, id] : spec.vocab) {
    MLA_CHECK(id >= 0, "model.vocab: token {:?} has negative id {}", token, id);
    max_id = std::max(max_id, id);
    vocab_[token] = id;
  }
  tokens_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : vocab_) {
    MLA_CHECK(!tokens_[static_cast<size_t>(id)], "model.vocab: id {} is given to both {:?} and {:?}", id,
              *tokens_[static_cast<size_t>(id)], token);
    tokens_[static_cast<size_t>(id)] = token;
  }

  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append(ch, byte_level::char_of_byte(static_cast<uint8_t>(b)));
    const auto it = vocab_.find(ch);
    byte_ids_[static_cast<size_t>(b)] = it == vocab_.end() ? -1 : it->second;
  }

  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const auto l = vocab_.find(left);
    const auto r = vocab_.find(right);
    const auto m = vocab_.find(left + right);
    MLA_CHECK(l != vocab_.end() && r != vocab_.end(), "model.merges[{}]: {:?} {:?} uses a token not in the vocab",
              rank, left, right);
    MLA_CHECK(m != vocab_.end(), "model.merges[{}]: the merge result {:?} is not in the vocab", rank, left + right);
    // A repeated pair keeps its last rank, as Hugging Face's HashMap collect does.
    merges_.insert(l->second, r->second, MergeTable::Merge{static_cast<int32_t>(rank), m->second});
  }

  if (spec.unk_token) {
    const auto it = vocab_.find(*spec.unk_token);
    MLA_CHECK(it != vocab_.end(), "model.unk_token {:?} is not in the vocab", *spec.unk_token);
    unk_id_ = it->second;
  }
  fuse_unk_ = spec.fuse_unk;
  ignore_merges_ = spec.ignore_merges;
  if (ignore_merges_) {
    std::string bytes;
    for (const auto& [token, id] : vocab_) {
      if (byte_level::decode(token, bytes)) whole_pieces_[bytes] = id;
    }
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_end() || !tokens_[static_cast<size_t>(id)]) return nullptr;
  return &*tokens_[static_cast<size_t>(id)];
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    const auto it = whole_pieces_.find(piece);
    if (it != whole_pieces_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() == 1 && byte_ids_[static_cast<uint8_t>(piece[0])] >= 0) {
    out.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= BpeCache::kMaxKeyBytes;
  const uint64_t hash = cacheable ? BpeCache::hash(piece) : 0;
  if (cacheable && cache_.lookup(piece, hash, out)) return;
  const size_t before = out.size();
  merge(piece, out);
  if (cacheable) cache_.insert(piece, hash, out.data() + before, out.size() - before);
}

void BpeModel::merge(std::string_view piece, std::vector<int32_t>& out) const {
  thread_local MergeScratch scratch;
  std::vector<Symbol>& symbols = scratch.symbols;
  std::vector<Candidate>& heap = scratch.heap;
  symbols.clear();
  heap.clear();

  bool previous_unk = false;
  for (const char c : piece) {
    int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    const bool unknown = id < 0;
    if (unknown) {
      if (unk_id_ < 0) continue;                // no unk token: the byte is dropped
      if (fuse_unk_ && previous_unk) continue;  // fused into the unk before it
      id = unk_id_;
    }
    previous_unk = unknown;
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, n + 1, false});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  auto push = [&](int32_t pos) {
    const Symbol& s = symbols[static_cast<size_t>(pos)];
    if (s.next < 0) return;
    if (const MergeTable::Merge* m = merges_.find(s.id, symbols[static_cast<size_t>(s.next)].id)) {
      heap.push_back(Candidate{m->rank, pos, m->merged_id});
      std::push_heap(heap.begin(), heap.end(), heap_after);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), heap_after);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& s = symbols[static_cast<size_t>(top.pos)];
    if (s.removed || s.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(s.next)];
    // Skip stale candidates: the pair at `pos` must still be the one that was queued.
    const MergeTable::Merge* m = merges_.find(s.id, right.id);
    if (m == nullptr || m->merged_id != top.merged_id) continue;
    s.id = top.merged_id;
    right.removed = true;
    s.next = right.next;
    if (s.next >= 0) symbols[static_cast<size_t>(s.next)].prev = top.pos;
    if (s.prev >= 0) push(s.prev);
    push(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) out.push_back(symbols[static_cast<size_t>(i)].id);
}

}  // namespace mlaserve::tokenizer
