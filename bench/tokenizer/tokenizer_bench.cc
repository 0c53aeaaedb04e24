// Benchmark of mlaserve's tokenizer against Hugging Face tokenizers on the same text, in one
// run. A program, not a test: it prints a table and writes JSON under bench/results/.
//
//   tokenizer_bench [--tokenizer DIR] [--bytes N] [--repeats R] [--out DIR]
//
// The text is bench/tokenizer/hf_tokenizer_bench.py's document (tools/tokenizer/corpus.py:
// English paragraphs, code blocks, numbers, some CJK and Cyrillic), N bytes (default 1 MiB,
// about 250k tokens with DeepSeek-V3's tokenizer). Everything runs on one thread.
//   load                 Tokenizer::load / Tokenizer.from_file
//   encode doc, cold     the first encode after loading (empty BPE cache)
//   encode doc, warm     best and median of R encodes of the whole document
//   encode paragraphs    every paragraph its own call (many short prompts, as a server sees)
//   decode, stream       ours only: the document's ids at once, and one by one through
//                        IncrementalDetokenizer
// The Hugging Face figures come from hf_tokenizer_bench.py encode, run as a child process
// right after ours; the ids of both sides are checked equal (count and checksum).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "bench_report.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

using mlaserve::tokenizer::IncrementalDetokenizer;
using mlaserve::tokenizer::Tokenizer;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) throw std::runtime_error("command failed: " + command);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

uint64_t checksum(const std::vector<int32_t>& ids) {
  uint64_t h = 0;
  for (const int32_t id : ids) h = h * 1000003 + static_cast<uint64_t>(id);
  return h;
}

struct Timing {
  double best;
  double median;
};

template <class F>
Timing repeat(int n, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

std::vector<std::string> paragraphs_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path root = MLASERVE_SOURCE_DIR;
  std::string tokenizer_dir = (root / "../shared/data/deepseek-v3-tokenizer").lexically_normal().string();
  if (!std::filesystem::exists(tokenizer_dir)) tokenizer_dir = (root / "tests/data/tiny-tokenizer").string();
  size_t bytes = 1 << 20;
  int repeats = 5;
  std::string out_dir = (root / "bench/results").string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tokenizer") tokenizer_dir = value();
    else if (a == "--bytes") bytes = std::stoul(value());
    else if (a == "--repeats") repeats = std::stoi(value());
    else if (a == "--out") out_dir = value();
    else {
      fmt::print(stderr, "usage: tokenizer_bench [--tokenizer DIR] [--bytes N] [--repeats R] [--out DIR]\n");
      return 2;
    }
  }
  const std::string helper = (root / "bench/tokenizer/hf_tokenizer_bench.py").string();
  const std::string text_path = fmt::format("/tmp/mlaserve_tokenizer_bench_{}.txt", getpid());
  run(fmt::format("python3 '{}' make-text --out '{}' --bytes {}", helper, text_path, bytes));
  const std::string text = read_file(text_path);
  const std::vector<std::string> paragraphs = paragraphs_of(text);
  const double mb = static_cast<double>(text.size()) / 1e6;

  // Ours.
  auto t0 = Clock::now();
  const Tokenizer tok = Tokenizer::load(tokenizer_dir);
  const double load_s = seconds_since(t0);
  t0 = Clock::now();
  const std::vector<int32_t> ids = tok.encode(text);
  const double cold_s = seconds_since(t0);
  const Timing warm = repeat(repeats, [&] { tok.encode(text); });
  const Timing para = repeat(repeats, [&] {
    for (const auto& p : paragraphs) tok.encode(p);
  });
  const Timing decode = repeat(repeats, [&] { tok.decode(ids); });
  const Timing stream = repeat(repeats, [&] {
    IncrementalDetokenizer d(tok, false);
    size_t n = 0;
    for (const int32_t id : ids) n += d.push(id).size();
    n += d.flush().size();
    if (n != text.size()) throw std::runtime_error("streamed text differs from the document");
  });

  // Hugging Face, same text, same machine, right after.
  const nlohmann::json hf = nlohmann::json::parse(
      run(fmt::format("python3 '{}' encode --tokenizer '{}' --text '{}' --repeats {}", helper, tokenizer_dir, text_path, repeats)));
  std::filesystem::remove(text_path);
  const bool same_ids = hf["doc"]["tokens"].get<size_t>() == ids.size() &&
                        hf["doc"]["checksum"].get<std::string>() == std::to_string(checksum(ids));

  const double n_tokens = static_cast<double>(ids.size());
  auto rate = [&](double s) { return fmt::format("{:8.1f} MB/s {:9.0f} tok/s", mb / s, n_tokens / s); };
  fmt::print("tokenizer: {}\ndocument: {} bytes, {} paragraphs, {} tokens; {} on {} cores\n\n", tokenizer_dir, text.size(),
             paragraphs.size(), ids.size(), cpu_model(), std::thread::hardware_concurrency());
  fmt::print("{:<26}{:<34}{:<34}{}\n", "", "mlaserve", "HF tokenizers " + hf["version"].get<std::string>(), "speed-up");
  fmt::print("{:<26}{:<34}{:<34}{:.1f}x\n", "load", fmt::format("{:8.3f} s", load_s),
             fmt::format("{:8.3f} s", hf["load_s"].get<double>()), hf["load_s"].get<double>() / load_s);
  const std::pair<const char*, std::pair<double, double>> rows[] = {
      {"encode doc, cold", {cold_s, hf["doc"]["cold_s"]}},
      {"encode doc, warm best", {warm.best, hf["doc"]["warm_best_s"]}},
      {"encode doc, warm median", {warm.median, hf["doc"]["warm_median_s"]}},
      {"encode paragraphs, best", {para.best, hf["paragraphs"]["best_s"]}},
  };
  for (const auto& [name, t] : rows) {
    fmt::print("{:<26}{:<34}{:<34}{:.1f}x\n", name, rate(t.first), rate(t.second), t.second / t.first);
  }
  fmt::print("{:<26}{:<34}\n", "decode, best", rate(decode.best));
  fmt::print("{:<26}{:<34}\n", "stream decode, best", rate(stream.best));
  fmt::print("\nids identical to Hugging Face: {}\n", same_ids ? "yes" : "NO");

  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  auto entry = [&](double ours, double theirs) {
    return nlohmann::json{{"mlaserve_s", ours}, {"hf_s", theirs}, {"mlaserve_mb_per_s", mb / ours}, {"hf_mb_per_s", mb / theirs},
                          {"mlaserve_tokens_per_s", n_tokens / ours}, {"hf_tokens_per_s", n_tokens / theirs},
                          {"speedup", theirs / ours}};
  };
  const nlohmann::json doc = {
      {"machine", {{"cpu", cpu_model()}, {"cores", std::thread::hardware_concurrency()}, {"hostname", host}}},
      {"tokenizer", tokenizer_dir},
      {"hf_tokenizers_version", hf["version"]},
      {"document", {{"bytes", text.size()}, {"paragraphs", paragraphs.size()}, {"tokens", ids.size()}}},
      {"ids_identical", same_ids},
      {"threads", 1},
      {"results",
       {{"load", {{"mlaserve_s", load_s}, {"hf_s", hf["load_s"]}}},
        {"encode_doc_cold", entry(cold_s, hf["doc"]["cold_s"])},
        {"encode_doc_warm_best", entry(warm.best, hf["doc"]["warm_best_s"])},
        {"encode_doc_warm_median", entry(warm.median, hf["doc"]["warm_median_s"])},
        {"encode_paragraphs_best", entry(para.best, hf["paragraphs"]["best_s"])},
        {"decode_best", {{"mlaserve_s", decode.best}, {"mlaserve_mb_per_s", mb / decode.best}}},
        {"stream_decode_best", {{"mlaserve_s", stream.best}, {"mlaserve_tokens_per_s", n_tokens / stream.best}}}}},
  };
  mlaserve::bench::write_report(out_dir, "tokenizer", cpu_model(), mlaserve::bench::command_line(argc, argv), doc);
  return same_ids ? 0 : 1;
}
