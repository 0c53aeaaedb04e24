// The split-model flags (cli/dist_options.h) as the command line gives them: sizes and the routed
// experts' split (--expert-split experts|channels, whole experts when not given); a split it does
// not know is refused by the parser.
#include <gtest/gtest.h>

#include <string>

#include "cli/dist_options.h"

namespace mlaserve::cli {
namespace {

dist::LaunchOptions parse(const std::string& args) {
  CLI::App app;
  dist::LaunchOptions o;
  add_dist_options(app, o);
  app.parse(args, false);
  return o;
}

TEST(DistOptions, ExpertSplitFromTheCommandLine) {
  const dist::LaunchOptions plain = parse("--tensor-parallel-size 8");
  EXPECT_EQ(plain.tp_size, 8);
  EXPECT_EQ(plain.expert_split, dist::ExpertSplit::kExperts);
  EXPECT_EQ(parse("--tensor-parallel-size 8 --expert-split channels").expert_split, dist::ExpertSplit::kChannels);
  EXPECT_EQ(parse("--expert-split experts").expert_split, dist::ExpertSplit::kExperts);
  EXPECT_THROW(parse("--expert-split heads"), CLI::ValidationError);
}

}  // namespace
}  // namespace mlaserve::cli
