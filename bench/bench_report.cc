#include "bench_report.h"

#include <cstdio>
#include <ctime>

#include "core/error.h"
#include "core/new_file.h"

namespace mlaserve::bench {
namespace {

std::string utc(const std::tm& time, const char* format) {
  char text[32];
  std::strftime(text, sizeof(text), format, &time);
  return text;
}

}  // namespace

std::string command_line(int argc, char** argv) {
  std::string command;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) command += ' ';
    command += argv[i];
  }
  return command;
}

std::string write_report(const std::string& dir, const std::string& benchmark, const std::string& machine,
                         const std::string& command, nlohmann::json fields) {
  const std::time_t now = std::time(nullptr);
  std::tm time{};
  gmtime_r(&now, &time);
  fields["benchmark"] = benchmark;
  fields["date"] = utc(time, "%Y-%m-%dT%H:%M:%SZ");
  fields["command"] = command;
  const std::string path = write_new_file(dir, benchmark + "_" + file_name_part(machine) + "_" + utc(time, "%Y%m%d-%H%M%S"),
                                          "json", fields.dump(2) + "\n");
  std::printf("\nwrote %s\n", path.c_str());
  return path;
}

}  // namespace mlaserve::bench
