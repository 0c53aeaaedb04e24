// Parsing and validation of the OpenAI requests: every accepted field lands in the typed
// request, every bad one is a 400 naming the field.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/json_nesting.h"
#include "server/api_error.h"
#include "server/openai_request.h"

namespace mlaserve::server {
namespace {

Json body(const std::string& text) { return parse_json_object(text); }

// The ApiError a parse throws (status 0 if none).
template <typename F>
ApiError error_of(F f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "", "");
}

ApiError chat_error(const std::string& text) {
  return error_of([&] { parse_chat_request(body(text), RequestLimits{}); });
}
ApiError completion_error(const std::string& text) {
  return error_of([&] { parse_completion_request(body(text), RequestLimits{}); });
}

TEST(ParseJson, MalformedBodiesAre400) {
  for (const char* text : {"", "{", "{\"a\": }", "[1, 2]", "\"x\"", "nul", "{\"a\": 1} trailing", "\xff\xfe",
                           "{\"a\": 1e999999}", "{\"a\": -1e400}"}) {
    ApiError e = error_of([&] { parse_json_object(text); });
    EXPECT_EQ(e.status(), 400) << text;
    EXPECT_EQ(e.type(), "invalid_request_error");
  }
  // Invalid UTF-8 inside a string.
  EXPECT_EQ(error_of([] { parse_json_object("{\"a\": \"\xc3\x28\"}"); }).status(), 400);
}

// Nesting up to kMaxJsonNesting levels (the body counts as one) parses; one more is a 400, and so
// are 200,000 levels of arrays or objects in a chat message (which overflowed the stack).
TEST(ParseJson, DeepNestingIsRefused) {
  const auto nested = [](int levels) {  // levels - 1 arrays inside the body object
    return "{\"a\": " + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  EXPECT_NO_THROW(parse_json_object(nested(kMaxJsonNesting)));
  ApiError e = error_of([&] { parse_json_object(nested(kMaxJsonNesting + 1)); });
  EXPECT_EQ(e.status(), 400);
  EXPECT_NE(std::string(e.what()).find("deeper than 64 levels"), std::string::npos) << e.what();
  const int n = 200000;
  std::string arrays = R"({"model": "m", "messages": [{"role": "user", "content": "hi", "x": )" +
                       std::string(n, '[') + std::string(n, ']') + "}]}";
  EXPECT_EQ(error_of([&] { parse_json_object(arrays); }).status(), 400);
  std::string objects = "{\"model\": \"m\", \"x\": ";
  for (int i = 0; i < n; ++i) objects += "{\"k\": ";
  objects += "1" + std::string(n, '}') + "}";
  EXPECT_EQ(error_of([&] { parse_json_object(objects); }).status(), 400);
}

TEST(ParseCompletion, AllFields) {
  CompletionRequest r = parse_completion_request(
      body(R"({"model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
               "min_p": 0.1, "presence_penalty": 1, "frequency_penalty": -1.5, "repetition_penalty": 1.2,
               "seed": -3, "stop": "x", "stop_token_ids": [4, 5], "n": 2, "stream": true,
               "stream_options": {"include_usage": true}, "logprobs": 3, "ignore_eos": true,
               "skip_special_tokens": false, "logit_bias": {"7": -100, "12": 2.5}, "user": "someone",
               "unknown_field": [1, 2]})"),
      RequestLimits{});
  EXPECT_EQ(r.gen.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(r.prompts[0]), "hi");
  const SamplingParams& p = r.gen.params;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_FLOAT_EQ(p.min_p, 0.1f);
  EXPECT_FLOAT_EQ(p.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, -1.5f);
  EXPECT_FLOAT_EQ(p.repetition_penalty, 1.2f);
  EXPECT_EQ(p.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(p.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(p.stop_token_ids, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(p.logprobs, 3);
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_FALSE(p.skip_special_tokens);
  std::vector<std::pair<int32_t, float>> bias = p.logit_bias;
  std::sort(bias.begin(), bias.end());
  EXPECT_EQ(bias, (std::vector<std::pair<int32_t, float>>{{7, -100.0f}, {12, 2.5f}}));
  EXPECT_EQ(r.gen.n, 2);
  EXPECT_TRUE(r.gen.stream);
  EXPECT_TRUE(r.gen.include_usage);
}

TEST(ParseCompletion, Defaults) {
  CompletionRequest r = parse_completion_request(body(R"({"model": "m", "prompt": [1, 2, 3]})"), RequestLimits{});
  EXPECT_EQ(std::get<std::vector<int32_t>>(r.prompts[0]), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.gen.params.max_tokens, 16);  // OpenAI's completions default
  EXPECT_FLOAT_EQ(r.gen.params.temperature, 1.0f);
  EXPECT_FALSE(r.gen.params.logprobs);
  EXPECT_FALSE(r.gen.params.seed);
  EXPECT_EQ(r.gen.n, 1);
  EXPECT_FALSE(r.gen.stream);
  // null reads as absent
  r = parse_completion_request(body(R"({"model": "m", "prompt": "x", "max_tokens": null, "stop": null})"),
                               RequestLimits{});
  EXPECT_EQ(r.gen.params.max_tokens, 16);
  EXPECT_TRUE(r.gen.params.stop.empty());
}

TEST(ParseCompletion, PromptForms) {
  CompletionRequest r =
      parse_completion_request(body(R"({"model": "m", "prompt": ["a", [7, 8], "b"]})"), RequestLimits{});
  ASSERT_EQ(r.prompts.size(), 3u);
  EXPECT_EQ(std::get<std::string>(r.prompts[0]), "a");
  EXPECT_EQ(std::get<std::vector<int32_t>>(r.prompts[1]), (std::vector<int32_t>{7, 8}));
  for (const char* bad : {R"({"model": "m"})", R"({"model": "m", "prompt": []})", R"({"model": "m", "prompt": 5})",
                          R"({"model": "m", "prompt": [[]]})", R"({"model": "m", "prompt": [1, -2]})",
                          R"({"model": "m", "prompt": [1, 2.5]})", R"({"model": "m", "prompt": [{"a": 1}]})",
                          R"({"model": "m", "prompt": [1, 99999999999]})"}) {
    ApiError e = completion_error(bad);
    EXPECT_EQ(e.status(), 400) << bad;
    EXPECT_EQ(e.param(), "prompt") << bad;
  }
}

TEST(ParseCompletion, BadFieldsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": "x"})", "model"},
      {R"({"model": 5, "prompt": "x"})", "model"},
      {R"({"model": "m", "prompt": "x", "max_tokens": -1})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "max_tokens": "5"})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 5.0})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 1e300})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"model": "m", "prompt": "x", "temperature": -0.1})", "temperature"},
      {R"({"model": "m", "prompt": "x", "temperature": 2.5})", "temperature"},
      {R"({"model": "m", "prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"model": "m", "prompt": "x", "top_p": 0})", "top_p"},
      {R"({"model": "m", "prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"model": "m", "prompt": "x", "top_k": -2})", "top_k"},
      {R"({"model": "m", "prompt": "x", "min_p": 2})", "min_p"},
      {R"({"model": "m", "prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {R"({"model": "m", "prompt": "x", "frequency_penalty": -3})", "frequency_penalty"},
      {R"({"model": "m", "prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"model": "m", "prompt": "x", "n": 0})", "n"},
      {R"({"model": "m", "prompt": "x", "n": 1000})", "n"},
      {R"({"model": "m", "prompt": "x", "stream": "yes"})", "stream"},
      {R"({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"model": "m", "prompt": "x", "stop": 5})", "stop"},
      {R"({"model": "m", "prompt": "x", "stop": [""]})", "stop"},
      {R"({"model": "m", "prompt": "x", "stop": ["a", 1]})", "stop"},
      {R"({"model": "m", "prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"model": "m", "prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"model": "m", "prompt": "x", "seed": 1.5})", "seed"},
      {R"({"model": "m", "prompt": "x", "stop_token_ids": [-1]})", "stop_token_ids"},
      {R"({"model": "m", "prompt": "x", "echo": true})", "echo"},
      {R"({"model": "m", "prompt": "x", "logit_bias": [5]})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"x": 1}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"-1": 1}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"1.5": 1}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"": 1}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"99999999999": 1}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"5": 101}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "logit_bias": {"5": "1"}})", "logit_bias"},
      {R"({"model": "m", "prompt": "x", "best_of": 3})", "best_of"},
      {R"({"model": "m", "prompt": "x", "suffix": "y"})", "suffix"},
  };
  for (const auto& [text, param] : cases) {
    ApiError e = completion_error(text);
    EXPECT_EQ(e.status(), 400) << text;
    EXPECT_EQ(e.param(), param) << text;
    EXPECT_NE(std::string(e.what()).find(param), std::string::npos) << e.what();
  }
  // 21 stop strings > max_stop (16).
  std::string many = R"({"model": "m", "prompt": "x", "stop": [)";
  for (int i = 0; i < 21; ++i) many += (i ? ",\"s" : "\"s") + std::to_string(i) + "\"";
  EXPECT_EQ(completion_error(many + "]}").param(), "stop");
  // 1,025 biased tokens > max_logit_bias (1,024).
  std::string biases = R"({"model": "m", "prompt": "x", "logit_bias": {)";
  for (int i = 0; i < 1025; ++i) biases += (i ? ",\"" : "\"") + std::to_string(i) + "\": 1";
  EXPECT_EQ(completion_error(biases + "}}").param(), "logit_bias");
}

TEST(ParseChat, MessagesAndChatFields) {
  ChatRequest r = parse_chat_request(
      body(R"({"model": "m", "messages": [{"role": "developer", "content": "be brief"},
               {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
               {"role": "assistant", "content": null}],
               "max_tokens": 9, "max_completion_tokens": 4, "logprobs": true, "top_logprobs": 2})"),
      RequestLimits{});
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_EQ(r.gen.params.max_tokens, 4);  // max_completion_tokens wins
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(r.gen.params.logprobs, 2);
  EXPECT_TRUE(r.add_generation_prompt);

  r = parse_chat_request(body(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true})"),
                         RequestLimits{});
  EXPECT_EQ(r.gen.params.logprobs, 0);  // the sampled token's logprob only
  r = parse_chat_request(body(R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})"), RequestLimits{});
  EXPECT_FALSE(r.gen.params.logprobs);
}

TEST(ParseChat, BadMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"model": "m"})", "messages"},
      {R"({"model": "m", "messages": []})", "messages"},
      {R"({"model": "m", "messages": "hi"})", "messages"},
      {R"({"model": "m", "messages": [5]})", "messages"},
      {R"({"model": "m", "messages": [{"content": "x"}]})", "messages"},
      {R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})", "messages"},
      {R"({"model": "m", "messages": [{"role": "user", "content": 5}]})", "messages"},
      {R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": 1})", "logprobs"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5})",
       "max_completion_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})",
       "response_format"},
  };
  for (const auto& [text, param] : cases) {
    ApiError e = chat_error(text);
    EXPECT_EQ(e.status(), 400) << text;
    EXPECT_EQ(e.param(), param) << text;
  }
}

TEST(ApiErrorBody, OpenAIShape) {
  ApiError e = invalid_request("bad thing", "temperature");
  EXPECT_EQ(e.body().dump(),
            R"({"error":{"message":"bad thing","type":"invalid_request_error","param":"temperature","code":null}})");
  EXPECT_EQ(client_message("check failed: n > 0: the prompt is empty (engine/engine.cc:81)"), "the prompt is empty");
  EXPECT_EQ(client_message("plain message"), "plain message");
  EXPECT_EQ(client_message("a (b) c (x/y-z_1.h:7)"), "a (b) c");
  EXPECT_EQ(client_message("kept (engine.cc:)"), "kept (engine.cc:)");
  EXPECT_EQ(client_message("kept (.cc:12)"), "kept (.cc:12)");
  EXPECT_EQ(client_message("kept (a b.cc:12)"), "kept (a b.cc:12)");
  EXPECT_EQ(client_message("kept (engine.py:12)"), "kept (engine.py:12)");
  // A long message (a template's raise_exception echoing user text) once overflowed std::regex's stack.
  const std::string long_tail = "x (" + std::string(200000, 'a');
  EXPECT_EQ(client_message(long_tail), long_tail);
  EXPECT_EQ(client_message(long_tail + ".cu:3)"), "x");
}

}  // namespace
}  // namespace mlaserve::server
