// Replays a fuzz target's inputs through its LLVMFuzzerTestOneInput, as the test
// FuzzCorpus.<target> (MLASERVE_FUZZ_TARGET): its corpus (MLASERVE_FUZZ_CORPUS: its own seeds
// and every input that once found a bug) and the seeds CMake copied from the project's files
// (MLASERVE_FUZZ_SEEDS); either folder may be absent. A crash, a sanitizer report or an exception
// the target lets out fails the test, naming the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(FuzzCorpus, MLASERVE_FUZZ_TARGET) {
  std::vector<std::filesystem::path> files;
  for (const char* folder : {MLASERVE_FUZZ_CORPUS, MLASERVE_FUZZ_SEEDS}) {
    if (!std::filesystem::is_directory(folder)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << "no inputs in " << MLASERVE_FUZZ_CORPUS << " or " << MLASERVE_FUZZ_SEEDS;
  for (const auto& path : files) {
    SCOPED_TRACE(path.filename().string());
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
  }
}

}  // namespace
