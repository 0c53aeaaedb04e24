// write_new_file: a results file that never replaces another one.
//
// Benchmarks name their JSON after the benchmark, the card and the second they finish; two runs
// that finish in the same second (benchmarks on several GPUs of one machine at once) must both
// keep their results. write_new_file creates DIR/STEM.EXT, or DIR/STEM-2.EXT, DIR/STEM-3.EXT, ...
// when that name is taken, with an exclusive create (so two processes cannot pick the same name),
// writes the text and returns the path. Throws mlaserve::Error when the file cannot be written.
#pragma once

#include <string>
#include <string_view>

namespace mlaserve {

std::string write_new_file(const std::string& dir, const std::string& stem, const std::string& ext,
                           std::string_view text);

// A machine's name as part of such a stem: lower case, every character that is not a letter or
// a digit a dash ("NVIDIA H200" -> "nvidia-h200").
std::string file_name_part(std::string_view name);

}  // namespace mlaserve
