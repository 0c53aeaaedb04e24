// The chat template engine's API and its errors: unsupported constructs are named at parse
// time, failures while rendering carry the template line, and the tiny tokenizer's V3-format
// template renders the shape MODEL_SPEC.md section 8.3 gives.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"

namespace mlaserve::tokenizer {
namespace {

using nlohmann::ordered_json;

const std::filesystem::path kTiny = std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/data/tiny-tokenizer";

std::string error_of(const std::string& source, const ordered_json& messages = ordered_json::array()) {
  try {
    ChatTemplate(source).render(messages);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(ChatTemplate, TinyTokenizerRendersTheV3Format) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer(tok);
  const ordered_json messages = ordered_json::parse(R"([
    {"role": "system", "content": "You are helpful"},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "How are you?"}])");
  EXPECT_EQ(tmpl.render(messages, {.add_generation_prompt = true}),
            "<｜begin▁of▁sentence｜>You are helpful<｜User｜>Hi<｜Assistant｜>Hello<｜end▁of▁sentence｜>"
            "<｜User｜>How are you?<｜Assistant｜>");
  // The rendered prompt starts with BOS already: encode it without adding another.
  const std::vector<int32_t> ids = tok.encode(tmpl.render(messages, {.add_generation_prompt = true}));
  EXPECT_EQ(ids.front(), *tok.bos_id());
  EXPECT_EQ(ids.back(), *tok.token_to_id("<｜Assistant｜>"));
}

TEST(ChatTemplate, ToolCallsAndOutputs) {
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer(Tokenizer::load(kTiny));
  const ordered_json messages = ordered_json::parse(R"([
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "get", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "Sunny."}])");
  EXPECT_EQ(tmpl.render(messages),
            "<｜begin▁of▁sentence｜><｜User｜>Weather?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
            "<｜tool▁sep｜>get\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
            "<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>Sunny.<｜end▁of▁sentence｜>");
}

TEST(ChatTemplate, UnsupportedConstructsAreNamed) {
  EXPECT_NE(error_of("{% macro m() %}x{% endmacro %}").find("unsupported template tag '{% macro %}'"), std::string::npos);
  EXPECT_NE(error_of("{% include 'x.j2' %}").find("'{% include %}'"), std::string::npos);
  EXPECT_NE(error_of("{% filter upper %}x{% endfilter %}").find("'{% filter %}'"), std::string::npos);
  EXPECT_NE(error_of("{{ x | wordwrap }}").find("unsupported filter 'wordwrap'"), std::string::npos);
  EXPECT_NE(error_of("{% if x is prime %}{% endif %}").find("unsupported test 'prime'"), std::string::npos);
  EXPECT_NE(error_of("{% frobnicate %}").find("unknown template tag 'frobnicate'"), std::string::npos);
  EXPECT_NE(error_of("{% for x in y recursive %}{% endfor %}").find("recursive"), std::string::npos);
  EXPECT_NE(error_of("{{ f(*args) }}").find("*args"), std::string::npos);
  EXPECT_NE(error_of("{{ '%s' % 1 }}").find("printf-style"), std::string::npos);
  EXPECT_NE(error_of("{{ [1]|select }}").find("generator"), std::string::npos);
  EXPECT_NE(error_of("{{ 'É'|lower }}").find("non-ASCII"), std::string::npos);
  EXPECT_NE(error_of("{{ range }}").find("function range()"), std::string::npos);
}

TEST(ChatTemplate, SyntaxAndRuntimeErrorsCarryTheLine) {
  EXPECT_NE(error_of("a\n{% if %}{% endif %}").find("chat template line 2"), std::string::npos);
  EXPECT_NE(error_of("{% for x in y %}").find("expected 'endfor'"), std::string::npos);
  EXPECT_NE(error_of("{{ 'unterminated }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(error_of("{# open").find("missing end of comment"), std::string::npos);
  EXPECT_NE(error_of("{% break %}").find("outside of a loop"), std::string::npos);
  // A stray byte (0xA0: U+00A0, a space, without its lead byte) once stalled the lexer.
  EXPECT_NE(error_of("x\n{{\xa0 'a' }}").find("line 2: the template is not valid UTF-8 (byte 4 of 12)"), std::string::npos)
      << error_of("x\n{{\xa0 'a' }}");
  const std::string e = error_of("one\ntwo\n{{ messages[0].content + '!' }}", ordered_json::parse(R"([{"role": "user"}])"));
  EXPECT_NE(e.find("chat template line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("has no attribute 'content'"), std::string::npos) << e;
  EXPECT_NE(error_of("{{ raise_exception('Conversation roles must alternate') }}").find("Conversation roles must alternate"),
            std::string::npos);
}

// Nesting is bounded where parsing, rendering and freeing would recurse past the stack: each
// template below is refused at 100,000 levels (each once overflowed it) and renders at 20.
TEST(ChatTemplate, DeepNestingIsRefused) {
  const auto repeat = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  const auto templates = [&](int n) {
    return std::vector<std::string>{
        "{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}",     // parentheses
        "{{ " + repeat("[", n) + repeat("]", n) + " }}",           // lists
        "{{ " + repeat("not ", n) + "1 }}",                        // not chains
        "{{ " + repeat("-", n) + "1 }}",                           // unary minus chains
        "{{ " + repeat("1 + ", n) + "1 }}",                        // a chain is as tall as it is long
        "{{ 'x'" + repeat(" | string", n) + " }}",                  // filters
        "{{ messages" + repeat("[0:]", n) + " | length }}",        // subscripts
        "{{ 1" + repeat(" if 1 else 2", n) + " }}",                // conditions
        repeat("{% if 1 %}", n) + "x" + repeat("{% endif %}", n),  // statements
    };
  };
  for (const std::string& source : templates(100000)) {
    const std::string e = error_of(source);
    EXPECT_NE(e.find("nested"), std::string::npos) << source.substr(0, 40) << ": " << e;
  }
  for (const std::string& source : templates(20)) {
    EXPECT_EQ(error_of(source), "") << source.substr(0, 40);
  }
}

// Values a template builds are bounded the same way: containers nest at most kMaxValueNesting
// deep, and no namespace holds a namespace (the only way a value contains itself). Each of
// these overflowed the stack when printed or freed.
TEST(ChatTemplate, DeepOrCyclicValuesAreRefused) {
  const std::string wrap = "{% set ns = namespace(x=[]) %}{% for i in range(N) %}{% set ns.x = [ns.x] %}{% endfor %}";
  const auto with_n = [&](int n, const std::string& tail) {
    std::string t = wrap + tail;
    t.replace(t.find('N'), 1, std::to_string(n));
    return t;
  };
  EXPECT_NE(error_of(with_n(99999, "{{ ns.x|length }}")).find("values nested deeper than 100 levels"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(d={}) %}{% for i in range(200) %}{% set ns.d = {'k': ns.d} %}{% endfor %}")
                .find("values nested deeper than 100 levels"),
            std::string::npos);
  EXPECT_EQ(error_of(with_n(90, "{{ ns.x|tojson }}")), "");
  EXPECT_NE(error_of("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}").find("holding a namespace ('x')"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(x=1) %}{% set ns.x = [1, {'a': ns}] %}").find("holding a namespace"),
            std::string::npos);
  EXPECT_NE(error_of("{% set a = namespace() %}{% set b = namespace(x=a) %}").find("holding a namespace"),
            std::string::npos);
  EXPECT_EQ(error_of("{% set ns = namespace(x=1) %}{% set l = [ns] %}{% set ns.x = 2 %}{{ l[0].x }}"), "");
}

// A render is bounded in steps and bytes: a template that never ends or grows without end fails
// the render (each of these held the thread or took all the memory).
TEST(ChatTemplate, RenderBudget) {
  // Statements and iterations both count: 99,999 iterations of 10 statements, and 10^10 of an
  // empty loop (its `if` filter fails every item).
  std::string ten = "{% for i in range(99999) %}";
  for (int i = 0; i < 10; ++i) ten += "{{ '' }}";
  EXPECT_NE(error_of(ten + "{% endfor %}").find("ran past 1000000 statements and loop iterations"), std::string::npos);
  EXPECT_NE(error_of("{% for a in range(99999) %}{% for b in range(99999) if false %}{% endfor %}{% endfor %}")
                .find("ran past 1000000 statements and loop iterations"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}")
                .find("a string of more than 67108864 bytes"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'ab' * 1000000000000 }}").find("string repeated past 67108864 bytes"), std::string::npos);
  EXPECT_NE(error_of("{{ [1, 2] * 3000000 }}").find("list repeated past 4194304 items"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}").find("output passed 67108864 bytes"),
            std::string::npos);
  EXPECT_EQ(error_of("{% for i in range(20000) %}{{ 'x' * 1000 }}{% endfor %}"), "");  // 20 MB is fine
}

// Python's int() has no bound; the engine's integers are 64 bits. A float (or a number in a
// string) beyond them is an OverflowError in |int, as in the arithmetic: its conversion in C++ is
// undefined (the fuzzer's UBSan build found '|int' of 7.8e26 in a string).
TEST(ChatTemplate, IntegersBeyond64BitsFail) {
  const auto render = [](const std::string& source) { return ChatTemplate(source).render(ordered_json::array()); };
  for (const std::string source : {"{{ '777777777777777777777777777 '|int }}", "{{ 1e19|int }}", "{{ -1e19|int }}",
                                   "{{ '9223372036854775808.0'|int }}", "{{ 9223372036854775807 + 1 }}",
                                   "{{ 'inf'|float|int }}"}) {
    EXPECT_NE(error_of(source).find("OverflowError"), std::string::npos) << source << ": " << error_of(source);
  }
  EXPECT_EQ(render("{{ '-9223372036854775808.0'|int }}|{{ 9.2e18|int }}|{{ '-4.7'|int }}"),
            "-9223372036854775808|9200000000000000000|-4");
  // jinja2 3.1's defaults: a string's int(float(x)) failing either way; a float's int(x) failing with ValueError.
  EXPECT_EQ(render("{{ 'inf'|int }}|{{ 'nan'|int(5) }}|{{ ('nan'|float)|int(3) }}"), "0|5|3");
}

TEST(ChatTemplate, MessagesMustBeAnArray) {
  EXPECT_THROW(ChatTemplate("x").render(ordered_json::object()), Error);
}

TEST(ChatTemplate, ContextOverridesAndDefaults) {
  const ChatTemplate tmpl("{{ bos_token }}|{{ tools is none }}|{{ documents is defined }}|{{ extra }}|{{ add_generation_prompt }}",
                          ordered_json{{"bos_token", "<s>"}});
  EXPECT_EQ(tmpl.render(ordered_json::array(), {.add_generation_prompt = true, .context = {{"extra", 7}}}), "<s>|True|True|7|True");
  EXPECT_EQ(tmpl.render(ordered_json::array(), {.context = {{"bos_token", "[B]"}, {"tools", ordered_json::array()}}}),
            "[B]|False|True||False");
}

TEST(ChatTemplate, KeyOrderFollowsTheJsonType) {
  const ChatTemplate tmpl("{{ messages[0]|tojson }}");
  const std::string text = R"([{"role": "user", "content": "x"}])";
  EXPECT_EQ(tmpl.render(ordered_json::parse(text)), R"({"role": "user", "content": "x"})");
  EXPECT_EQ(tmpl.render(nlohmann::json::parse(text), {}), R"({"content": "x", "role": "user"})");
}

TEST(ChatTemplate, StrftimeNowFormatsTheCurrentDate) {
  const std::string year = ChatTemplate("{{ strftime_now('%Y') }}").render(ordered_json::array());
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

TEST(ChatTemplate, ConcurrentRendersAgree) {
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer(Tokenizer::load(kTiny));
  ordered_json messages = ordered_json::array();
  for (int i = 0; i < 50; ++i) {
    messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", "turn " + std::to_string(i)}});
  }
  const std::string expected = tmpl.render(messages);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 25; ++r) ok[t] += tmpl.render(messages) == expected;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 25));
}

}  // namespace
}  // namespace mlaserve::tokenizer
