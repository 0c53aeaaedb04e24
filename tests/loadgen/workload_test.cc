#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "loadgen/completion_client.h"
#include "loadgen/workload.h"

namespace mlaserve::loadgen {
namespace {

TEST(RandomWorkload, SeededLengthsAroundTheMeans) {
  RandomWorkloadOptions o;
  o.num_requests = 2000;
  o.input_len = 100;
  o.output_len = 40;
  o.range_ratio = 0.5;
  o.vocab = 50;
  o.seed = 3;
  const auto w = random_workload(o);
  ASSERT_EQ(w.size(), 2000u);
  double in_sum = 0, out_sum = 0;
  for (const LoadRequest& r : w) {
    EXPECT_FALSE(r.prompt.has_value());
    EXPECT_GE(r.prompt_ids.size(), 50u);
    EXPECT_LE(r.prompt_ids.size(), 150u);
    EXPECT_GE(r.max_tokens, 20);
    EXPECT_LE(r.max_tokens, 60);
    for (int32_t id : r.prompt_ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 50);
    }
    in_sum += double(r.prompt_ids.size());
    out_sum += double(r.max_tokens);
  }
  // Uniform on [50, 150]: sd 29, standard error of the mean 0.65; [20, 60]: 0.26.
  EXPECT_NEAR(in_sum / 2000, 100.0, 3.5);
  EXPECT_NEAR(out_sum / 2000, 40.0, 1.5);

  const auto again = random_workload(o);
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].prompt_ids, again[i].prompt_ids);
    EXPECT_EQ(w[i].max_tokens, again[i].max_tokens);
  }
  o.seed = 4;
  EXPECT_NE(random_workload(o)[0].prompt_ids, w[0].prompt_ids);
}

TEST(RandomWorkload, ZeroRangeGivesExactLengths) {
  RandomWorkloadOptions o;
  o.num_requests = 10;
  o.input_len = 7;
  o.output_len = 3;
  o.range_ratio = 0.0;
  for (const LoadRequest& r : random_workload(o)) {
    EXPECT_EQ(r.prompt_ids.size(), 7u);
    EXPECT_EQ(r.max_tokens, 3);
  }
  o.range_ratio = 1.0;
  EXPECT_THROW(random_workload(o), Error);
}

std::vector<LoadRequest> parse(const std::string& text) {
  std::istringstream in(text);
  return parse_dataset(in, "data.jsonl");
}

TEST(Dataset, ParsesTextAndIdPrompts) {
  const auto w = parse(
      "{\"prompt\": \"Hello\", \"max_tokens\": 5, \"note\": \"ignored\"}\n"
      "\n"
      "  \r\n"
      "{\"prompt_ids\": [1, 2, 3], \"max_tokens\": 16}\r\n");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].prompt, "Hello");
  EXPECT_EQ(w[0].max_tokens, 5);
  EXPECT_FALSE(w[1].prompt.has_value());
  EXPECT_EQ(w[1].prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(w[1].max_tokens, 16);
}

// Each bad line fails with the file, its line number and what is wrong.
TEST(Dataset, ErrorsNameTheLine) {
  const std::string good = "{\"prompt\": \"a\", \"max_tokens\": 1}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"prompt\": \"a\", \"max_tokens\": 1", "not JSON"},
      {"{\"prompt\": \"a\", \"max_tokens\": 1e999}", "not JSON"},  // nlohmann's out_of_range, not a parse_error
      {"[1, 2]", "expected a JSON object"},
      {"{\"max_tokens\": 3}", "exactly one of"},
      {"{\"prompt\": \"a\", \"prompt_ids\": [1], \"max_tokens\": 3}", "exactly one of"},
      {"{\"prompt\": 5, \"max_tokens\": 3}", "must be a string"},
      {"{\"prompt\": \"\", \"max_tokens\": 3}", "is empty"},
      {"{\"prompt_ids\": [], \"max_tokens\": 3}", "non-empty array"},
      {"{\"prompt_ids\": \"1 2\", \"max_tokens\": 3}", "non-empty array"},
      {"{\"prompt_ids\": [1, -2], \"max_tokens\": 3}", "not a token id"},
      {"{\"prompt_ids\": [1, 2.5], \"max_tokens\": 3}", "not a token id"},
      {"{\"prompt_ids\": [1, 4294967296], \"max_tokens\": 3}", "not a token id"},
      {"{\"prompt\": \"a\"}", "\"max_tokens\" is missing"},
      {"{\"prompt\": \"a\", \"max_tokens\": 0}", "positive integer"},
      {"{\"prompt\": \"a\", \"max_tokens\": -4}", "positive integer"},
      {"{\"prompt\": \"a\", \"max_tokens\": 2.0}", "positive integer"},
      {"{\"prompt\": \"a\", \"max_tokens\": \"8\"}", "positive integer"},
  };
  for (const auto& [line, message] : cases) {
    try {
      parse(good + "\n" + line + "\n" + good);
      ADD_FAILURE() << "accepted: " << line;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("data.jsonl:3"), std::string::npos) << what;
      EXPECT_NE(what.find(message), std::string::npos) << what;
    }
  }
}

TEST(Dataset, EmptyOrMissingFileFails) {
  EXPECT_THROW(parse(""), Error);
  EXPECT_THROW(parse("\n  \n"), Error);
  EXPECT_THROW(load_dataset("/nonexistent/dataset.jsonl"), Error);
}

TEST(CompletionBody, StreamsWithIgnoreEosAndUsage) {
  LoadRequest ids;
  ids.prompt_ids = {5, 6};
  ids.max_tokens = 9;
  const nlohmann::json b = completion_body(ids, "tiny");
  EXPECT_EQ(b.at("model"), "tiny");
  EXPECT_EQ(b.at("prompt"), nlohmann::json::array({5, 6}));
  EXPECT_EQ(b.at("max_tokens"), 9);
  EXPECT_EQ(b.at("stream"), true);
  EXPECT_EQ(b.at("ignore_eos"), true);
  EXPECT_EQ(b.at("stream_options").at("include_usage"), true);
  LoadRequest text;
  text.prompt = "Hi";
  text.max_tokens = 1;
  EXPECT_EQ(completion_body(text, "m").at("prompt"), "Hi");
}

}  // namespace
}  // namespace mlaserve::loadgen
