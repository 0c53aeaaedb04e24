#include "kernel_trace.h"

#include <cuda_runtime_api.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "core/cuda_check.h"

#if __has_include(<cupti_activity.h>)
#include <cupti_activity.h>
#define MLASERVE_HAVE_CUPTI 1
#endif

namespace mlaserve::bench {
namespace {

#ifdef MLASERVE_HAVE_CUPTI

// "void mlaserve::ops::gpu::f<1, 2>(mlaserve::ops::gpu::P)" -> "gpu::f<1, 2>": no return type,
// arguments, anonymous namespaces or leading mlaserve::ops::.
std::string short_name(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                                        &std::free);
  std::string s = status == 0 && demangled ? demangled.get() : mangled;
  for (const std::string cut : {"(anonymous namespace)::", "mlaserve::ops::", "mlaserve::"}) {
    for (size_t at; (at = s.find(cut)) != std::string::npos;) s.erase(at, cut.size());
  }
  if (const size_t paren = s.find('('); paren != std::string::npos) s.resize(paren);
  if (s.rfind("void ", 0) == 0) s.erase(0, 5);
  return s;
}

// The CUPTI entry points this file calls, from the library loaded at run time.
struct Cupti {
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
};

const Cupti& cupti() {
  static const Cupti api = [] {
    std::vector<std::string> names = {"libcupti.so.13", "libcupti.so"};
    if (const char* path = std::getenv("MLASERVE_CUPTI")) names.insert(names.begin(), path);
    void* lib = nullptr;
    for (const std::string& n : names) {
      if ((lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    }
    MLA_CHECK(lib != nullptr, "kernel trace: libcupti not found (tried $MLASERVE_CUPTI, libcupti.so.13, libcupti.so): {}",
              dlerror());
    auto sym = [&](const char* name) {
      void* f = dlsym(lib, name);
      MLA_CHECK(f != nullptr, "kernel trace: {} missing from libcupti", name);
      return f;
    };
    Cupti c;
    c.register_callbacks = reinterpret_cast<decltype(c.register_callbacks)>(sym("cuptiActivityRegisterCallbacks"));
    c.enable = reinterpret_cast<decltype(c.enable)>(sym("cuptiActivityEnable"));
    c.disable = reinterpret_cast<decltype(c.disable)>(sym("cuptiActivityDisable"));
    c.flush_all = reinterpret_cast<decltype(c.flush_all)>(sym("cuptiActivityFlushAll"));
    c.next_record = reinterpret_cast<decltype(c.next_record)>(sym("cuptiActivityGetNextRecord"));
    c.result_string = reinterpret_cast<decltype(c.result_string)>(sym("cuptiGetResultString"));
    return c;
  }();
  return api;
}

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = nullptr;
  cupti().result_string(r, &s);
  MLA_FAIL("kernel trace: {}: {}", what, s != nullptr ? s : "unknown CUPTI error");
}

struct Record {
  TracedKernel kernel;
  uint32_t correlation = 0;
};

// CUPTI hands the records to these callbacks on its own thread.
std::mutex g_mutex;
std::vector<Record> g_records;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *size = size_t{8} << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (cupti().next_record(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    g_records.push_back({{short_name(k->name), k->start, k->end, k->streamId}, k->correlationId});
  }
  std::free(buffer);
}

#endif  // MLASERVE_HAVE_CUPTI

}  // namespace

std::vector<TracedKernel> trace_last_graph_launch(const std::function<void()>& launch) {
#ifdef MLASERVE_HAVE_CUPTI
  check(cupti().register_callbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
  check(cupti().enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable");
  launch();
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  check(cupti().flush_all(1), "cuptiActivityFlushAll");
  check(cupti().disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityDisable");
  std::vector<Record> records;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    records.swap(g_records);
  }
  MLA_CHECK(!records.empty(), "kernel trace: no kernel ran");
  const uint32_t last = std::max_element(records.begin(), records.end(), [](const Record& a, const Record& b) {
                          return a.kernel.start_ns < b.kernel.start_ns;
                        })->correlation;
  std::vector<TracedKernel> kernels;
  for (Record& r : records) {
    if (r.correlation == last) kernels.push_back(std::move(r.kernel));
  }
  std::sort(kernels.begin(), kernels.end(),
            [](const TracedKernel& a, const TracedKernel& b) { return a.end_ns < b.end_ns; });
  return kernels;
#else
  (void)launch;
  MLA_FAIL("kernel trace: built without CUPTI's headers (cupti_activity.h)");
#endif
}

namespace {

// Each kernel's charged time (kernel_trace.h), kernels in the order of their ends; the first start
// in *t0, the instants with no kernel running in *gaps_us.
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
  std::sort(out.begin(), out.end(), [](const KernelShare& a, const KernelShare& b) { return a.charged_us > b.charged_us; });
  return out;
}

void write_trace_csv(const std::string& path, const std::vector<TracedKernel>& kernels) {
  uint64_t t0 = 0;
  double gaps = 0.0;
  const std::vector<double> charged = charged_us(kernels, &t0, &gaps);
  std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  MLA_CHECK(f != nullptr, "kernel trace: cannot write {}", path);
  std::fprintf(f.get(), "index,start_us,end_us,duration_us,charged_us,stream,kernel\n");
  for (size_t i = 0; i < kernels.size(); ++i) {
    const TracedKernel& k = kernels[i];
    std::fprintf(f.get(), "%zu,%.3f,%.3f,%.3f,%.3f,%u,\"%s\"\n", i, static_cast<double>(k.start_ns - t0) * 1e-3,
                 static_cast<double>(k.end_ns - t0) * 1e-3, static_cast<double>(k.end_ns - k.start_ns) * 1e-3, charged[i],
                 k.stream, k.name.c_str());
  }
}

}  // namespace mlaserve::bench
