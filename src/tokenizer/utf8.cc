#include "tokenizer/utf8.h"

#include <cstdint>

namespace mlaserve::tokenizer::utf8 {
namespace {

// What a lead byte announces: the sequence length (0 for a byte that cannot start one) and
// the allowed range of the second byte (which excludes overlongs, surrogates and > U+10FFFF).
struct Lead {
  int length;
  uint8_t second_lo;
  uint8_t second_hi;
};

Lead lead_of(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Length of the well-formed part of the sequence starting at s[i]: equals lead.length for a
// complete character, fewer for a maximal subpart that is invalid or cut off (at least 1).
int well_formed_length(std::string_view s, size_t i, const Lead& lead) {
  if (lead.length <= 1) return 1;
  int n = 1;
  for (; n < lead.length && i + n < s.size(); ++n) {
    const auto b = static_cast<uint8_t>(s[i + n]);
    const uint8_t lo = n == 1 ? lead.second_lo : 0x80;
    const uint8_t hi = n == 1 ? lead.second_hi : 0xBF;
    if (b < lo || b > hi) break;
  }
  return n;
}

}  // namespace

size_t valid_prefix_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead lead = lead_of(b);
    if (lead.length == 0 || well_formed_length(s, i, lead) != lead.length) return i;
    i += static_cast<size_t>(lead.length);
  }
  return i;
}

char32_t decode(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const int n = lead_of(b0).length;
  char32_t cp = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += static_cast<size_t>(n);
  return cp;
}

char32_t decode_before(std::string_view s, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
  return decode(s, start);
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_lossy(std::string& out, std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < bytes.size()) {
    // Copy the run of valid text in one go.
    const size_t valid = valid_prefix_length(bytes.substr(i));
    out.append(bytes.substr(i, valid));
    i += valid;
    if (i == bytes.size()) break;
    const Lead lead = lead_of(static_cast<uint8_t>(bytes[i]));
    i += static_cast<size_t>(lead.length == 0 ? 1 : well_formed_length(bytes, i, lead));
    out.append(kReplacement);
  }
}

size_t incomplete_suffix_length(std::string_view bytes) {
  // The last byte that is not a continuation byte starts the only sequence that can still
  // be incomplete (lead bytes are never consumed as continuations, so it is a boundary).
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const auto b = static_cast<uint8_t>(bytes[i]);
    if ((b & 0xC0) == 0x80) continue;
    const Lead lead = lead_of(b);
    if (lead.length <= 1) return 0;
    const int formed = well_formed_length(bytes, i, lead);
    return (static_cast<size_t>(formed) == back && formed < lead.length) ? back : 0;
  }
  return 0;
}

size_t count_code_points(std::string_view s) {
  size_t count = 0;
  for (const char c : s) count += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return count;
}

}  // namespace mlaserve::tokenizer::utf8
