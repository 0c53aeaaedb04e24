#include "core/new_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace mlaserve {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string fresh_dir() {
  const auto dir = std::filesystem::temp_directory_path() / ("new_file_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return (dir / "results").string();  // not there yet: write_new_file creates it
}

TEST(NewFile, SameNameTwiceKeepsBothFiles) {
  const std::string dir = fresh_dir();
  const std::string a = write_new_file(dir, "latency_h200_20261128-181757", "json", "{\"run\": 1}\n");
  const std::string b = write_new_file(dir, "latency_h200_20261128-181757", "json", "{\"run\": 2}\n");
  const std::string c = write_new_file(dir, "latency_h200_20261128-181757", "json", "");
  EXPECT_EQ(a, dir + "/latency_h200_20261128-181757.json");
  EXPECT_EQ(b, dir + "/latency_h200_20261128-181757-2.json");
  EXPECT_EQ(c, dir + "/latency_h200_20261128-181757-3.json");
  EXPECT_EQ(read_all(a), "{\"run\": 1}\n");
  EXPECT_EQ(read_all(b), "{\"run\": 2}\n");
  EXPECT_EQ(read_all(c), "");
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(NewFile, UnwritableDirectoryIsAnError) {
  EXPECT_THROW(write_new_file("/proc/no_such_dir_for_results", "x", "json", "{}"), Error);
}

TEST(NewFile, MachineNamesBecomeFileNameParts) {
  EXPECT_EQ(file_name_part("NVIDIA H200"), "nvidia-h200");
  EXPECT_EQ(file_name_part("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
  EXPECT_EQ(file_name_part("AMD EPYC 9654 96-Core Processor"), "amd-epyc-9654-96-core-processor");
  EXPECT_EQ(file_name_part("a/b_c.d"), "a-b-c-d");  // no path separators, no dots
  EXPECT_EQ(file_name_part(""), "");
}

}  // namespace
}  // namespace mlaserve
