// StageClock on the host clock (a CPU model's forwards): every forward's regions are summed, the
// forwards counted, and the timers reused.
#include "core/stage_clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace mlaserve {
namespace {

void forward(StageClock& clock, std::chrono::milliseconds layers) {
  RegionTimer& t = clock.begin();
  t.mark("stage.input");
  t.mark("stage.layers");
  std::this_thread::sleep_for(layers);
  t.mark("stage.output");
  t.stop();
  clock.end();
}

TEST(StageClock, SumsEachRegionOverTheForwards) {
  StageClock clock(Stream{}, /*on_gpu=*/false);
  for (int i = 0; i < 5; ++i) forward(clock, std::chrono::milliseconds(4));
  EXPECT_EQ(clock.forwards(), 5);
  const RegionTotals& totals = clock.totals();
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_GE(totals.at("stage.layers"), 5 * 4.0);  // sleep_for sleeps at least that long
  EXPECT_LT(totals.at("stage.input"), totals.at("stage.layers"));
  EXPECT_LT(totals.at("stage.output"), totals.at("stage.layers"));
}

TEST(StageClock, TotalsGrowWithLaterForwards) {
  StageClock clock(Stream{}, /*on_gpu=*/false);
  forward(clock, std::chrono::milliseconds(2));
  const double first = clock.totals().at("stage.layers");
  forward(clock, std::chrono::milliseconds(2));
  EXPECT_GE(clock.totals().at("stage.layers"), first + 2.0);
  EXPECT_EQ(clock.forwards(), 2);
}

}  // namespace
}  // namespace mlaserve
