# Third-party code, all from Debian packages or PyPI (installed by scripts/setup.sh).
# Everything is linked statically or used header-only, so a binary built on the CPU machine
# runs on the GPU machine (which has a different distribution).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)

# fmt: header-only (Debian ships only a shared libfmt).
add_library(mlaserve_fmt INTERFACE)
target_compile_definitions(mlaserve_fmt INTERFACE FMT_HEADER_ONLY=1)

# PCRE2 (8-bit code units, UTF mode), static.
find_path(PCRE2_INCLUDE_DIR pcre2.h REQUIRED)
find_library(PCRE2_STATIC_LIB NAMES libpcre2-8.a REQUIRED)
add_library(mlaserve_pcre2 INTERFACE)
target_include_directories(mlaserve_pcre2 INTERFACE ${PCRE2_INCLUDE_DIR})
target_compile_definitions(mlaserve_pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8 PCRE2_STATIC)
target_link_libraries(mlaserve_pcre2 INTERFACE ${PCRE2_STATIC_LIB})

# CLI11 (header-only).
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)

# CUTLASS / CuTe headers from PyPI's nvidia-cutlass wheel (installed --no-deps).
if(MLASERVE_CUDA)
  if(NOT CUTLASS_INCLUDE_DIR)
    execute_process(
      COMMAND python3 -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
      OUTPUT_VARIABLE _cutlass_inc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    set(CUTLASS_INCLUDE_DIR "${_cutlass_inc}" CACHE PATH "CUTLASS include directory")
  endif()
  if(NOT EXISTS "${CUTLASS_INCLUDE_DIR}/cutlass/cutlass.h")
    message(FATAL_ERROR "CUTLASS headers not found (run scripts/setup.sh, or set CUTLASS_INCLUDE_DIR)")
  endif()
  message(STATUS "CUTLASS headers: ${CUTLASS_INCLUDE_DIR}")
endif()

if(MLASERVE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
