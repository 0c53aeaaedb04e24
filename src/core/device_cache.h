// Hands the idle blocks of the caching GPU allocator (core/memory.h) back to the driver.
//
// Freed GPU buffers stay cached for reuse, so cudaMemGetInfo does not count them as free. Call
// this once loading is done (its temporaries: the BF16 weights that FP8 quantisation replaced,
// for instance) and before anything is sized from free memory (the KV cache,
// kv/cache_sizing.h). It synchronises the device; private pools (CUDA graphs) keep their blocks;
// without CUDA it does nothing.
#pragma once

namespace mlaserve {

void release_idle_device_memory();

}  // namespace mlaserve
