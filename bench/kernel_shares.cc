#include "kernel_shares.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "core/error.h"

namespace mlaserve::bench {
namespace {

// Each kernel's charged time (kernel_shares.h), kernels in any order; the first start in *t0, the
// instants with no kernel running in *gaps_us.
std::vector<double> charged_us(const std::vector<TracedKernel>& kernels, uint64_t* t0, double* gaps_us) {
  std::vector<uint64_t> cuts;
  for (const TracedKernel& k : kernels) cuts.push_back(k.start_ns), cuts.push_back(k.end_ns);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  *t0 = cuts.empty() ? 0 : cuts.front();
  *gaps_us = 0.0;
  std::vector<double> out(kernels.size(), 0.0);
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {  // O(kernels^2): a step has hundreds
    const uint64_t t = cuts[c];
    const double len = static_cast<double>(cuts[c + 1] - t) * 1e-3;
    size_t oldest = kernels.size();
    for (size_t i = 0; i < kernels.size(); ++i) {
      const TracedKernel& k = kernels[i];
      if (k.start_ns <= t && t < k.end_ns && (oldest == kernels.size() || k.start_ns < kernels[oldest].start_ns)) {
        oldest = i;
      }
    }
    if (oldest == kernels.size()) {
      *gaps_us += len;
    } else {
      out[oldest] += len;
    }
  }
  return out;
}

}  // namespace

std::vector<KernelShare> kernel_shares(const std::vector<TracedKernel>& kernels) {
  uint64_t t0 = 0;
  double gaps = 0.0;
  const std::vector<double> charged = charged_us(kernels, &t0, &gaps);
  std::map<std::string, KernelShare> by_name;
  for (size_t i = 0; i < kernels.size(); ++i) {
    KernelShare& s = by_name[kernels[i].name];
    s.name = kernels[i].name;
    s.launches += 1;
    s.mean_us += static_cast<double>(kernels[i].end_ns - kernels[i].start_ns) * 1e-3;
    s.charged_us += charged[i];
  }
  std::vector<KernelShare> out;
  for (auto& [name, s] : by_name) {
    s.mean_us /= static_cast<double>(s.launches);
    out.push_back(s);
  }
  if (gaps > 0.0) out.push_back({"(no kernel running)", 0, 0.0, gaps});
  std::sort(out.begin(), out.end(),
            [](const KernelShare& a, const KernelShare& b) { return a.charged_us > b.charged_us; });
  return out;
}

std::vector<TracedKernel> kernels_of_last_run(const std::vector<TracedKernel>& kernels, int runs) {
  MLA_CHECK(runs >= 1 && kernels.size() % static_cast<size_t>(runs) == 0,
            "kernel trace: {} kernels are not {} runs of the same kernels", kernels.size(), runs);
  std::vector<uint64_t> starts;
  for (const TracedKernel& k : kernels) starts.push_back(k.start_ns);
  std::sort(starts.begin(), starts.end());
  const uint64_t first = starts[starts.size() - starts.size() / static_cast<size_t>(runs)];  // the last run's first
  std::vector<TracedKernel> out;
  for (const TracedKernel& k : kernels) {
    if (k.start_ns >= first) out.push_back(k);
  }
  return out;
}

void write_trace_csv(const std::string& path, const std::vector<TracedKernel>& kernels) {
  uint64_t t0 = 0;
  double gaps = 0.0;
  const std::vector<double> charged = charged_us(kernels, &t0, &gaps);
  std::error_code ec;  // a folder that cannot be made shows as the open's failure below
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  MLA_CHECK(f != nullptr, "kernel trace: cannot write {}", path);
  std::fprintf(f.get(), "index,start_us,end_us,duration_us,charged_us,stream,kernel\n");
  for (size_t i = 0; i < kernels.size(); ++i) {
    const TracedKernel& k = kernels[i];
    const double start = static_cast<double>(k.start_ns - t0) * 1e-3, end = static_cast<double>(k.end_ns - t0) * 1e-3;
    std::fprintf(f.get(), "%zu,%.3f,%.3f,%.3f,%.3f,%u,\"%s\"\n", i, start, end, end - start, charged[i], k.stream,
                 k.name.c_str());
  }
}

void report_trace(const std::string& path, const std::vector<TracedKernel>& kernels, const std::string& what) {
  write_trace_csv(path, kernels);
  const std::vector<KernelShare> shares = kernel_shares(kernels);
  double span = 0.0;  // the charges add up to it
  for (const KernelShare& k : shares) span += k.charged_us;
  std::printf("  trace of %s: %zu kernels, %s; where its %.1f us go (kernel_shares.h):\n", what.c_str(),
              kernels.size(), path.c_str(), span);
  std::printf("  %8s %8s %9s  %s\n", "launches", "mean us", "charged", "kernel");
  for (size_t i = 0; i < std::min<size_t>(10, shares.size()); ++i) {
    const KernelShare& k = shares[i];
    std::printf("  %8lld %8.2f %8.1f%%  %s\n", static_cast<long long>(k.launches), k.mean_us,
                100.0 * k.charged_us / span, k.name.c_str());
  }
}

}  // namespace mlaserve::bench
