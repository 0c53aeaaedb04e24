// The routes end to end without a socket: ServingState over a real Engine (on the fake runner of
// tests/engine, whose greedy tokens are known) and the tiny tokenizer; generation tasks are
// started and polled the way HttpSession does.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <thread>
#include <mutex>

#include "engine/engine.h"
#include "engine/fake_runner.h"
#include "engine/tokenizer_text_decoder.h"
#include "server/router.h"

namespace mlaserve::server {
namespace {

using mlaserve::testing::FakeRunner;
using mlaserve::testing::FakeRunnerOptions;

constexpr int64_t kVocab = 1024;  // past the tiny tokenizer's 1000 ids, like a real model's padding
constexpr const char* kKey = "sekrit";

const tokenizer::Tokenizer& tiny_tokenizer() {
  static const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(std::string(MLASERVE_SOURCE_DIR) + "/tests/data/tiny-tokenizer");
  return tok;
}

struct Server {
  explicit Server(ServerOptions o = {}, bool start = true)
      : runner(FakeRunnerOptions{kVocab, 32, 1 << 20, {}}),
        text(tiny_tokenizer()),
        engine(runner, engine_options(), &text),
        state(engine, &tiny_tokenizer(), with_defaults(std::move(o))) {
    if (start) engine.start();
  }
  static EngineOptions engine_options() {
    EngineOptions e;
    e.scheduler = {256, 16, true};
    e.max_model_len = 256;
    return e;
  }
  static ServerOptions with_defaults(ServerOptions o) {
    if (o.model_name.empty()) o.model_name = "tiny";
    o.api_key = kKey;
    return o;
  }
  Routed call(const std::string& method, const std::string& target, const std::string& body = "",
              const std::string& auth = std::string("Bearer ") + kKey) {
    return route_request(state, HttpRequest{method, target, body, auth});
  }
  // Runs a task to its end as a connection would: start, then poll on every wake-up.
  std::string run(const std::shared_ptr<GenerationTask>& task) {
    std::mutex m;
    std::condition_variable cv;
    bool woken = false;
    task->start([&] {
      std::lock_guard lock(m);
      woken = true;
      cv.notify_all();
    });
    std::string out;
    while (!task->finished()) {
      std::unique_lock lock(m);
      cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return woken; });
      woken = false;
      lock.unlock();
      out += task->poll();
    }
    return out;
  }

  FakeRunner runner;
  TokenizerTextDecoderFactory text;
  Engine engine;
  ServingState state;
};

Json reply_json(const Routed& r) {
  EXPECT_TRUE(r.reply.has_value());
  return r.reply ? Json::parse(r.reply->body) : Json();
}

int status(const Routed& r) { return r.reply ? r.reply->status : 0; }

TEST(Router, HealthModelsAndAuth) {
  Server s;
  EXPECT_EQ(status(s.call("GET", "/health", "", "")), 200);  // no key needed
  EXPECT_EQ(status(s.call("GET", "/v1/models", "", "")), 401);
  Routed wrong = s.call("GET", "/v1/models", "", "Bearer nope");
  EXPECT_EQ(status(wrong), 401);
  EXPECT_EQ(reply_json(wrong)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(status(s.call("GET", "/v1/models", "", kKey)), 401);  // not a Bearer header
  Routed models = s.call("GET", "/v1/models");
  EXPECT_EQ(status(models), 200);
  EXPECT_EQ(reply_json(models)["data"][0]["id"], "tiny");
  EXPECT_EQ(reply_json(models)["data"][0]["max_model_len"], 256);
  EXPECT_EQ(status(s.call("GET", "/v1/models/tiny")), 200);
  EXPECT_EQ(status(s.call("GET", "/v1/models/other")), 404);
  EXPECT_EQ(status(s.call("GET", "/v1/models?x=1")), 200);
  std::string broken;
  s.state.set_broken_check([&] { return broken; });
  EXPECT_EQ(status(s.call("GET", "/health")), 200);
  broken = "rank 1 left";  // a split model's ranks have failed for good
  const Routed failed = s.call("GET", "/health");
  EXPECT_EQ(status(failed), 503);
  EXPECT_EQ(reply_json(failed)["reason"], "rank 1 left");
  broken.clear();
  s.state.start_draining();
  EXPECT_EQ(status(s.call("GET", "/health")), 503);
  EXPECT_EQ(status(s.call("POST", "/v1/completions", R"({"model": "tiny", "prompt": "x"})")), 503);
}

// The OpenAI SDK percent-encodes the id in /v1/models/{id}: "org/name" arrives as org%2Fname.
TEST(Router, ModelIdsArePercentDecoded) {
  ServerOptions o;
  o.model_name = "deepseek-ai/DeepSeek-R1";
  Server s(o);
  for (const char* target : {"/v1/models/deepseek-ai%2FDeepSeek-R1", "/v1/models/deepseek-ai%2fDeepSeek-R1",
                             "/v1/models/deepseek-ai/DeepSeek-R1", "/v1/models/%64eepseek-ai%2FDeepSeek-R1"}) {
    const Routed r = s.call("GET", target);
    EXPECT_EQ(status(r), 200) << target;
    EXPECT_EQ(reply_json(r)["id"], "deepseek-ai/DeepSeek-R1") << target;
  }
  EXPECT_EQ(status(s.call("GET", "/v1/models/deepseek-ai%2FDeepSeek-V3")), 404);
  for (const char* target : {"/v1/models/deepseek-ai%2", "/v1/models/x%zz", "/v1/models/%"}) {
    const Routed r = s.call("GET", target);
    EXPECT_EQ(status(r), 400) << target;
    EXPECT_NE(reply_json(r)["error"]["message"].get<std::string>().find("percent-encoding"), std::string::npos);
  }
}

// HEAD is answered wherever GET is (health probes send it); the session then leaves the body out.
TEST(Router, HeadIsAnsweredLikeGet) {
  Server s;
  EXPECT_EQ(status(s.call("HEAD", "/health", "", "")), 200);
  EXPECT_EQ(status(s.call("HEAD", "/v1/models")), 200);
  EXPECT_EQ(status(s.call("HEAD", "/v1/models/tiny")), 200);
  const Routed post_only = s.call("HEAD", "/v1/completions");
  EXPECT_EQ(status(post_only), 405);
  EXPECT_NE(reply_json(post_only)["error"]["message"].get<std::string>().find("method HEAD"), std::string::npos);
}

TEST(Router, UnknownRoutesAndMethods) {
  Server s;
  Routed r = s.call("GET", "/v2/everything");
  EXPECT_EQ(status(r), 404);
  EXPECT_EQ(r.route, "other");
  EXPECT_TRUE(reply_json(r)["error"].contains("message"));
  r = s.call("DELETE", "/v1/chat/completions");
  EXPECT_EQ(status(r), 405);
  ASSERT_EQ(r.reply->headers.size(), 1u);
  EXPECT_EQ(r.reply->headers[0], (std::pair<std::string, std::string>{"Allow", "POST"}));
  EXPECT_EQ(status(s.call("POST", "/health")), 405);
}

TEST(Router, RequestErrors) {
  Server s;
  EXPECT_EQ(status(s.call("POST", "/v1/completions", "{not json")), 400);
  EXPECT_EQ(status(s.call("POST", "/v1/completions", R"({"model": "tiny", "prompt": "x", "n": 1e999999})")), 400);
  // Values of a wrong type deep inside: 400, not 500.
  EXPECT_EQ(status(s.call("POST", "/v1/chat/completions",
                          R"({"model": "tiny", "messages": [{"role": "user", "content": [{"type": 5}]}]})")),
            400);
  EXPECT_EQ(status(s.call("POST", "/v1/chat/completions",
                          R"({"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": 5}})")),
            400);
  Routed r = s.call("POST", "/v1/completions", R"({"model": "gpt-4", "prompt": "x"})");
  EXPECT_EQ(status(r), 404);
  EXPECT_EQ(reply_json(r)["error"]["code"], "model_not_found");
  // Context: max_model_len 256.
  r = s.call("POST", "/v1/completions", Json{{"model", "tiny"}, {"prompt", std::vector<int>(300, 5)}}.dump());
  EXPECT_EQ(status(r), 400);
  EXPECT_EQ(reply_json(r)["error"]["code"], "context_length_exceeded");
  r = s.call("POST", "/v1/chat/completions",
             R"({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 255})");
  EXPECT_EQ(status(r), 400);
  EXPECT_EQ(reply_json(r)["error"]["param"], "max_completion_tokens");
  // Token ids past the model's vocabulary: refused by the engine's front door, as a 400.
  r = s.call("POST", "/v1/completions", R"({"model": "tiny", "prompt": [5, 5000]})");
  ASSERT_TRUE(r.task);
  try {
    s.run(r.task);
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("5000"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("engine.cc"), std::string::npos) << e.what();
  }
}

TEST(Router, TokenizeDetokenize) {
  Server s;
  Routed r = s.call("POST", "/tokenize", R"({"prompt": "hello world", "add_special_tokens": false})");
  ASSERT_EQ(status(r), 200);
  const Json tok = reply_json(r);
  EXPECT_EQ(tok["tokens"].get<std::vector<int32_t>>(), tiny_tokenizer().encode("hello world"));
  EXPECT_EQ(tok["count"], tok["tokens"].size());
  r = s.call("POST", "/detokenize", Json{{"tokens", tok["tokens"]}}.dump());
  EXPECT_EQ(reply_json(r)["prompt"], "hello world");
  r = s.call("POST", "/tokenize", R"({"messages": [{"role": "user", "content": "hi"}]})");
  ASSERT_EQ(status(r), 200);
  const std::vector<int32_t> ids = reply_json(r)["tokens"];
  EXPECT_EQ(ids.front(), *tiny_tokenizer().bos_id());  // the template writes BOS
  EXPECT_EQ(status(s.call("POST", "/detokenize", R"({"tokens": [99999]})")), 400);
  EXPECT_EQ(status(s.call("POST", "/detokenize", R"({"tokens": "abc"})")), 400);
  EXPECT_EQ(status(s.call("POST", "/tokenize", R"({"prompt": 5})")), 400);
}

TEST(Router, CompletionMatchesTheEnginesGreedyTokens) {
  Server s;
  const std::vector<int32_t> prompt = tiny_tokenizer().encode("The quick brown fox", true);
  const std::vector<int32_t> expected = mlaserve::testing::reference_greedy(prompt, 12, kVocab);
  std::vector<int32_t> known;  // ids with text
  for (int32_t id : expected) {
    if (tiny_tokenizer().has_id(id)) known.push_back(id);
  }
  const std::string expected_text = tiny_tokenizer().decode(known, /*skip_special_tokens=*/true);

  Routed r = s.call("POST", "/v1/completions",
                    R"({"model": "tiny", "prompt": "The quick brown fox", "max_tokens": 12, "temperature": 0})");
  ASSERT_TRUE(r.task) << (r.reply ? r.reply->body : "");
  EXPECT_EQ(s.run(r.task), "");
  ASSERT_EQ(r.task->reply_status(), 200);
  const Json j = Json::parse(r.task->reply_body());
  EXPECT_EQ(j["choices"][0]["text"], expected_text);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);

  // Streamed: the same text in pieces, then [DONE].
  r = s.call("POST", "/v1/completions",
             R"({"model": "tiny", "prompt": "The quick brown fox", "max_tokens": 12, "temperature": 0,
                 "stream": true, "logprobs": 1})");
  ASSERT_TRUE(r.task);
  const std::string sse = s.run(r.task);
  std::string text;
  int tokens = 0;
  size_t pos = 0;
  while ((pos = sse.find("data: {", pos)) != std::string::npos) {
    const size_t end = sse.find("\n\n", pos);
    const Json chunk = Json::parse(sse.substr(pos + 6, end - pos - 6));
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["logprobs"].is_null()) tokens += int(chunk["choices"][0]["logprobs"]["tokens"].size());
    pos = end;
  }
  EXPECT_EQ(text, expected_text);
  EXPECT_EQ(tokens, 12);
  EXPECT_EQ(sse.substr(sse.size() - 14), "data: [DONE]\n\n");

  // The metrics saw both requests; no block stays in use.
  const std::string m = s.state.metrics().render(s.engine.stats());
  EXPECT_NE(m.find("mlaserve_requests_finished_total{finish_reason=\"length\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("mlaserve_time_to_first_token_seconds_count 2"), std::string::npos);
  EXPECT_NE(m.find("mlaserve_generation_tokens_total 24"), std::string::npos);
}

TEST(Router, WaitingQueueLimitAnswers503) {
  ServerOptions o;
  o.max_waiting_requests = 2;
  Server s(o, /*start=*/false);  // nothing runs: everything admitted waits
  auto task = [&](int n) {
    Routed r = s.call("POST", "/v1/completions",
                      Json{{"model", "tiny"}, {"prompt", "hi"}, {"n", n}, {"max_tokens", 4}}.dump());
    EXPECT_TRUE(r.task);
    return r.task;
  };
  auto first = task(2);
  first->start([] {});
  auto second = task(1);
  try {
    second->start([] {});
    ADD_FAILURE() << "admitted past the limit";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 503);
  }
  first.reset();  // the client went away: its requests are aborted and leave the queue
  EXPECT_EQ(s.state.num_in_flight(), 0);
  auto third = task(2);
  third->start([] {});
  third.reset();
  // A request that could never be admitted, even alone, is the client's error: no retry helps.
  auto too_many = task(3);
  try {
    too_many->start([] {});
    ADD_FAILURE() << "admitted past the limit";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("asks for 3 generations"), std::string::npos) << e.what();
  }
}

TEST(Router, DroppedTaskFreesItsBlocks) {
  Server s;
  // Steps of at least 2 ms: the 200 tokens take 0.4 s, so the task is dropped mid-stream even
  // when this thread is slow to run (ctest -j; under the fake runner's speed the engine could
  // finish first).
  s.runner.before_execute = [](const ForwardBatch&) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };
  Routed r = s.call("POST", "/v1/chat/completions",
                    R"({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200,
                        "ignore_eos": true, "stream": true})");
  ASSERT_TRUE(r.task);
  r.task->start([] {});
  std::string sse;
  for (int i = 0; i < 5000 && std::count(sse.begin(), sse.end(), '\n') < 6; ++i) {  // 3 chunks out
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    sse += r.task->poll();
  }
  EXPECT_FALSE(r.task->finished());
  r.task.reset();  // as a connection that closes
  EngineStats st = s.engine.stats();
  for (int i = 0; i < 500 && (st.num_running > 0 || st.num_free_blocks != st.num_cache_blocks); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    st = s.engine.stats();
  }
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_free_blocks, st.num_cache_blocks);
  EXPECT_EQ(s.state.num_active_tasks(), 0);
  const std::string m = s.state.metrics().render(st);
  EXPECT_NE(m.find("mlaserve_requests_finished_total{finish_reason=\"abort\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("mlaserve_kv_blocks_in_use 0\n"), std::string::npos);
}

TEST(Metrics, HistogramIsCumulative) {
  Histogram h({1.0, 2.0});
  for (double v : {0.5, 1.5, 1.5, 3.0}) h.observe(v);
  std::string out;
  h.write(out, "x");
  EXPECT_EQ(out,
            "x_bucket{le=\"1\"} 1\nx_bucket{le=\"2\"} 3\nx_bucket{le=\"+Inf\"} 4\nx_sum 6.5\nx_count 4\n");
}

}  // namespace
}  // namespace mlaserve::server
