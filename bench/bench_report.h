// The report every benchmark program writes beside its printed table: one JSON file per run,
//   DIR/<benchmark>_<machine slug>_<UTC stamp>.json
// holding the program's own fields plus "benchmark", "date" (UTC, ISO 8601) and "command" (the
// command line as run). The slug is file_name_part (core/new_file.h) of the machine's name (a
// GPU's or a CPU's): "NVIDIA H200" -> "nvidia-h200".
// No CUDA here: the CPU-only benchmarks write the same report.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mlaserve::bench {

// argv joined by single spaces, argv[0] first.
std::string command_line(int argc, char** argv);

// Adds "benchmark", "date" (now) and "command" to `fields`, writes it (indented by 2) as
// dir/<benchmark>_<slug of machine>_<YYYYmmdd-HHMMSS, now>.json, creating dir if missing;
// prints "\nwrote PATH" and returns PATH.
std::string write_report(const std::string& dir, const std::string& benchmark, const std::string& machine,
                         const std::string& command, nlohmann::json fields);

}  // namespace mlaserve::bench
