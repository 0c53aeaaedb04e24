// Response and SSE formatting: ResponseBuilder fed synthetic engine events, checked chunk by
// chunk against the OpenAI wire format.
#include <gtest/gtest.h>

#include <optional>

#include "server/response_builder.h"
#include "server/response_json.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlaserve::server {
namespace {

const tokenizer::Tokenizer& tiny_tokenizer() {
  static const tokenizer::Tokenizer tok =
      tokenizer::Tokenizer::load(std::string(MLASERVE_SOURCE_DIR) + "/tests/data/tiny-tokenizer");
  return tok;
}

RequestOutput event(std::vector<int32_t> ids, std::string text, FinishReason finish = FinishReason::kNone,
                    int64_t prompt = 3, int64_t output = 0) {
  RequestOutput ev;
  ev.token_ids = std::move(ids);
  ev.text = std::move(text);
  ev.finished = finish != FinishReason::kNone;
  ev.finish_reason = finish;
  ev.num_prompt_tokens = prompt;
  ev.num_output_tokens = output;
  return ev;
}

// The SSE text as its JSON payloads; "[DONE]" as the string "[DONE]".
std::vector<Json> sse_payloads(const std::string& sse) {
  std::vector<Json> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    EXPECT_EQ(sse.compare(pos, 6, "data: "), 0) << sse.substr(pos);
    const size_t end = sse.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos);
    const std::string data = sse.substr(pos + 6, end - pos - 6);
    out.push_back(data == "[DONE]" ? Json("[DONE]") : Json::parse(data));
    pos = end + 2;
  }
  return out;
}

ResponseOptions options(ApiKind kind, bool stream) {
  ResponseOptions o;
  o.meta = {kind, kind == ApiKind::kChat ? "chatcmpl-1" : "cmpl-1", 1700000000, "tiny"};
  o.stream = stream;
  return o;
}

TEST(ResponseBuilder, ChatStreamChunks) {
  ResponseOptions o = options(ApiKind::kChat, true);
  o.include_usage = true;
  ResponseBuilder b(o, {ChoiceSpec{}});
  std::string sse = b.add(0, event({5}, "Hel", FinishReason::kNone, 3, 1));
  sse += b.add(0, event({6}, "", FinishReason::kNone, 3, 2));  // a token with no settled text: nothing
  sse += b.add(0, event({7}, "lo", FinishReason::kNone, 3, 3));
  EXPECT_FALSE(b.finished());
  sse += b.add(0, event({8}, "", FinishReason::kLength, 3, 4));
  EXPECT_TRUE(b.finished());
  const std::vector<Json> p = sse_payloads(sse);
  ASSERT_EQ(p.size(), 6u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(p[i]["id"], "chatcmpl-1");
    EXPECT_EQ(p[i]["created"], 1700000000);
    EXPECT_EQ(p[i]["model"], "tiny");
    EXPECT_TRUE(p[i]["usage"].is_null());
    EXPECT_EQ(p[i]["choices"][0]["index"], 0);
    EXPECT_TRUE(p[i]["choices"][0]["logprobs"].is_null());
  }
  EXPECT_EQ(p[0]["choices"][0]["delta"], (Json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(p[1]["choices"][0]["delta"], (Json{{"content", "Hel"}}));
  EXPECT_TRUE(p[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(p[2]["choices"][0]["delta"], (Json{{"content", "lo"}}));
  EXPECT_EQ(p[3]["choices"][0]["delta"], Json::object());
  EXPECT_EQ(p[3]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(p[4]["choices"], Json::array());
  EXPECT_EQ(p[4]["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(p[4]["usage"]["completion_tokens"], 4);
  EXPECT_EQ(p[4]["usage"]["total_tokens"], 7);
  EXPECT_EQ(p[5], "[DONE]");
}

TEST(ResponseBuilder, CompletionStreamWithoutUsage) {
  ResponseBuilder b(options(ApiKind::kCompletion, true), {ChoiceSpec{}});
  std::string sse = b.add(0, event({5}, "ab", FinishReason::kNone, 2, 1));
  sse += b.add(0, event({6}, "c", FinishReason::kStop, 2, 2));
  const std::vector<Json> p = sse_payloads(sse);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0]["object"], "text_completion");
  EXPECT_EQ(p[0]["choices"][0]["text"], "ab");
  EXPECT_FALSE(p[0].contains("usage"));
  EXPECT_EQ(p[1]["choices"][0]["text"], "c");
  EXPECT_EQ(p[1]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(p[2], "[DONE]");
}

TEST(ResponseBuilder, NonStreamedChoicesAndUsage) {
  // Two prompts x n = 2: prompt tokens count once per prompt, completion tokens per choice.
  std::vector<ChoiceSpec> specs = {{0, true, false}, {1, false, false}, {2, true, false}, {3, false, false}};
  ResponseBuilder b(options(ApiKind::kCompletion, false), specs);
  EXPECT_EQ(b.add(2, event({1}, "x", FinishReason::kNone, 5, 1)), "");
  b.add(2, event({2}, "y", FinishReason::kLength, 5, 2));
  b.add(0, event({3}, "p", FinishReason::kStop, 3, 1));
  b.add(1, event({4}, "q", FinishReason::kLength, 3, 1));
  EXPECT_FALSE(b.finished());
  RequestOutput last = event({}, "", FinishReason::kStop, 5, 3);
  last.stop_string = "zz";
  b.add(3, last);
  ASSERT_TRUE(b.finished());
  EXPECT_FALSE(b.error());
  const Json j = b.body();
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 4u);
  EXPECT_EQ(j["choices"][2]["text"], "xy");
  EXPECT_EQ(j["choices"][2]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][3]["stop_reason"], "zz");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 8);
  EXPECT_EQ(j["usage"]["completion_tokens"], 7);
  EXPECT_EQ(j["usage"]["total_tokens"], 15);
}

TEST(ResponseBuilder, ChatMessageWithReasoning) {
  ResponseOptions o = options(ApiKind::kChat, false);
  o.reasoning = true;
  ResponseBuilder b(o, {ChoiceSpec{0, true, false}});
  b.add(0, event({1}, "<thi"));
  b.add(0, event({2}, "nk>plan</th"));
  b.add(0, event({3}, "ink>\nanswer", FinishReason::kStop));
  const Json msg = b.body()["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["reasoning_content"], "plan");
  EXPECT_EQ(msg["content"], "\nanswer");

  o.stream = true;
  ResponseBuilder s(o, {ChoiceSpec{0, true, true}});  // the prompt opened <think>
  std::string sse = s.add(0, event({1}, "plan"));
  sse += s.add(0, event({2}, "</think>ok", FinishReason::kStop));
  const std::vector<Json> p = sse_payloads(sse);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[1]["choices"][0]["delta"], (Json{{"reasoning_content", "plan"}}));
  EXPECT_EQ(p[2]["choices"][0]["delta"], (Json{{"content", "ok"}}));
}

TEST(ResponseBuilder, EngineErrorsAndAborts) {
  ResponseBuilder b(options(ApiKind::kChat, false), {ChoiceSpec{}});
  RequestOutput failed = event({}, "", FinishReason::kError);
  failed.error = "out of memory";
  b.add(0, failed);
  ASSERT_TRUE(b.error());
  EXPECT_EQ(b.error()->status(), 500);
  EXPECT_NE(std::string(b.error()->what()).find("out of memory"), std::string::npos);

  ResponseBuilder a(options(ApiKind::kChat, false), {ChoiceSpec{}});
  a.add(0, event({}, "", FinishReason::kAbort));
  ASSERT_TRUE(a.error());
  EXPECT_EQ(a.error()->status(), 503);

  ResponseBuilder s(options(ApiKind::kCompletion, true), {ChoiceSpec{}});
  const std::vector<Json> p = sse_payloads(s.add(0, failed));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0]["error"]["type"], "internal_error");
  EXPECT_EQ(p[1], "[DONE]");
}

TEST(ResponseJson, ChatLogprobsFromTheTokenizer) {
  const tokenizer::Tokenizer& tok = tiny_tokenizer();
  const std::vector<int32_t> ids = tok.encode("hello world");
  ASSERT_GE(ids.size(), 2u);
  TokenLogprobs lp{{ids[0], -0.5f}, {{ids[0], -0.5f}, {ids[1], -1.25f}}};
  const Json content = chat_logprobs_content(&tok, {lp});
  ASSERT_EQ(content.size(), 1u);
  const int32_t first[1] = {ids[0]};
  EXPECT_EQ(content[0]["token"], tok.decode(first));
  EXPECT_FLOAT_EQ(content[0]["logprob"].get<float>(), -0.5f);
  Json bytes = Json::array();
  for (unsigned char c : tok.token_bytes(ids[0])) bytes.push_back(int(c));
  EXPECT_EQ(content[0]["bytes"], bytes);
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_FLOAT_EQ(content[0]["top_logprobs"][1]["logprob"].get<float>(), -1.25f);
  // An id the tokenizer lacks (the model's vocabulary padding) has no text.
  EXPECT_EQ(token_text(&tok, tok.vocab_size() + 5), "");
  EXPECT_EQ(token_text(nullptr, 3), "");
}

TEST(ResponseJson, CompletionLogprobsOffsets) {
  const tokenizer::Tokenizer& tok = tiny_tokenizer();
  // ASCII, then characters of 2-4 bytes (some split over byte tokens, each alone a U+FFFD).
  for (const std::string text : {"hello world again", "日本語 😀 ok é"}) {
    SCOPED_TRACE(text);
    const std::vector<int32_t> ids = tok.encode(text);
    std::vector<TokenLogprobs> lps;
    for (int32_t id : ids) lps.push_back({{id, -1.0f}, {{id, -1.0f}}});
    const Json j = completion_logprobs(&tok, lps, 10);
    ASSERT_EQ(j["tokens"].size(), ids.size());
    int64_t offset = 10;
    std::string joined;
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(j["text_offset"][i], offset);
      offset += static_cast<int64_t>(tokenizer::utf8::count_code_points(j["tokens"][i].get<std::string>()));
      joined += j["tokens"][i].get<std::string>();
      EXPECT_EQ(j["top_logprobs"][i].size(), 1u);
    }
    if (text == "hello world again") EXPECT_EQ(joined, text);
  }
  // The tiny vocabulary splits 語 into its 3 bytes, each alone a U+FFFD (3 bytes, 1 character):
  // the offsets step by 1 (OpenAI's and vLLM's characters), not by 3.
  std::vector<TokenLogprobs> bytes;
  for (int32_t id : tok.encode("語")) bytes.push_back({{id, -1.0f}, {}});
  ASSERT_EQ(bytes.size(), 3u);
  const Json j = completion_logprobs(&tok, bytes, 0);
  EXPECT_EQ(j["tokens"], Json::array({"\uFFFD", "\uFFFD", "\uFFFD"}));
  EXPECT_EQ(j["text_offset"], Json::array({0, 1, 2}));
}

TEST(ResponseJson, SseFraming) {
  EXPECT_EQ(sse_event(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // Invalid UTF-8 is replaced, never thrown on.
  const std::string s = sse_event(Json{{"t", std::string("a\xff")}});
  EXPECT_EQ(s, "data: {\"t\":\"a\xEF\xBF\xBD\"}\n\n");
}

}  // namespace
}  // namespace mlaserve::server
