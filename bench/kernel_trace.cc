#include "kernel_trace.h"

#include <cuda_runtime_api.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
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

// A traced kernel and the id of the launch that queued it.
struct Record {
  TracedKernel kernel;
  uint32_t correlation = 0;
};

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
    MLA_CHECK(lib != nullptr,
              "kernel trace: libcupti not found (tried $MLASERVE_CUPTI, libcupti.so.13, libcupti.so): {}", dlerror());
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

// Every kernel `launch` runs with kernel tracing on (after the device has finished), with the
// correlation id of the launch that queued it.
std::vector<Record> traced_records(const std::function<void()>& launch) {
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
  return records;
#else
  (void)launch;
  MLA_FAIL("kernel trace: built without CUPTI's headers (cupti_activity.h)");
#endif
}

std::vector<TracedKernel> by_end(std::vector<TracedKernel> kernels) {
  std::sort(kernels.begin(), kernels.end(),
            [](const TracedKernel& a, const TracedKernel& b) { return a.end_ns < b.end_ns; });
  return kernels;
}

}  // namespace

std::vector<TracedKernel> trace_last_graph_launch(const std::function<void()>& launch) {
  std::vector<Record> records = traced_records(launch);
  const uint32_t last = std::max_element(records.begin(), records.end(), [](const Record& a, const Record& b) {
                          return a.kernel.start_ns < b.kernel.start_ns;
                        })->correlation;
  std::vector<TracedKernel> kernels;
  for (Record& r : records) {
    if (r.correlation == last) kernels.push_back(std::move(r.kernel));
  }
  return by_end(std::move(kernels));
}

std::vector<TracedKernel> trace_last_run(const std::function<void()>& run, int runs) {
  std::vector<TracedKernel> kernels;
  const std::vector<Record> records = traced_records([&] {
    for (int i = 0; i < runs; ++i) {
      run();
      MLA_CUDA_CHECK(cudaDeviceSynchronize());
    }
  });
  for (const Record& r : records) kernels.push_back(r.kernel);
  return by_end(kernels_of_last_run(kernels, runs));
}

}  // namespace mlaserve::bench
