#include "core/error.h"

#include <gtest/gtest.h>

namespace mlaserve {
namespace {

TEST(Error, CheckCarriesFileLineAndMessage) {
  try {
    int rows = 5;
    MLA_CHECK(rows == 4, "tensor {} has {} rows", "q_proj", rows);
    FAIL() << "no throw";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("tensor q_proj has 5 rows"), std::string::npos) << what;
    EXPECT_NE(what.find("rows == 4"), std::string::npos) << what;
    EXPECT_NE(what.find("error_test.cc:"), std::string::npos) << what;
  }
}

TEST(Error, FailThrows) { EXPECT_THROW(MLA_FAIL("bad {}", 1), Error); }

}  // namespace
}  // namespace mlaserve
