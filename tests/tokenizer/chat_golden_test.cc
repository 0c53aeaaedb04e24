// Chat templates and the Jinja engine against Python jinja2 (set up as transformers sets it
// up), on what make_golden.py rendered at test time: the V3-, R1- and V2-Chat-format
// templates of tests/tokenizer/data over generated conversations (tool calls and outputs,
// </think> stripping, messages Python rejects), and jinja_cases.json, one case per feature.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "golden.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace mlaserve::tokenizer {
namespace {

using nlohmann::ordered_json;
using testing::escaped;
using testing::read_jsonl;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Renders every row of chat/NAME.jsonl with `source`; returns the number of rows.
size_t check_chat(const std::string& name, const std::string& source) {
  const auto rows = read_jsonl("chat/" + name + ".jsonl");
  size_t failures = 0;
  for (const auto& row : rows) {
    const ChatTemplate tmpl(source, row.at("context"));
    std::string got;
    std::string error;
    try {
      got = tmpl.render(row.at("messages"), {.add_generation_prompt = row.at("add_generation_prompt").get<bool>()});
    } catch (const Error& e) {
      error = e.what();
    }
    const bool python_failed = row.contains("error");
    const bool ok = python_failed ? !error.empty() : error.empty() && got == row.at("rendered").get<std::string>();
    if (!ok && ++failures <= 5) {
      ADD_FAILURE() << name << ": messages " << row.at("messages").dump() << "\n  jinja2: "
                    << (python_failed ? "error " + row.at("error").get<std::string>() : escaped(row.at("rendered")))
                    << "\n  ours:   " << (error.empty() ? escaped(got) : "error " + error);
    }
  }
  EXPECT_EQ(failures, 0u) << name;
  return rows.size();
}

TEST(ChatGolden, V3FormatTemplate) {
  EXPECT_GE(check_chat("v3_format", read_text(std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/tokenizer/data/v3_format.jinja")), 100u);
}

TEST(ChatGolden, R1FormatTemplate) {
  EXPECT_GE(check_chat("r1_format", read_text(std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/tokenizer/data/r1_format.jinja")), 100u);
}

TEST(ChatGolden, V2ChatFormatTemplate) {
  EXPECT_GE(check_chat("v2_chat_format", read_text(std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/tokenizer/data/v2_chat_format.jinja")),
            100u);
}

TEST(ChatGolden, V3ShippedTemplate) {
  const std::filesystem::path v3 = std::filesystem::path(MLASERVE_SHARED_DATA) / "deepseek-v3-tokenizer";
  if (!std::filesystem::exists(v3 / "tokenizer_config.json")) {
    GTEST_SKIP() << "DeepSeek-V3 tokenizer_config.json not found at " << v3 << " (../shared/data is absent)";
  }
  const std::string source = ordered_json::parse(read_text(v3 / "tokenizer_config.json")).at("chat_template");
  EXPECT_GE(check_chat("v3_shipped", source), 100u);
}

TEST(JinjaGolden, EveryCaseMatchesJinja2) {
  const auto rows = read_jsonl("jinja_cases.jsonl");
  ASSERT_GE(rows.size(), 70u);
  for (const auto& row : rows) {
    const std::string name = row.at("name");
    jinja::Context context;
    for (const auto& [k, v] : row.at("context").items()) context.emplace_back(k, jinja::Value::from_json(v));
    std::string got;
    std::string error;
    try {
      got = jinja::render(jinja::parse_template(row.at("template").get<std::string>()), context);
    } catch (const Error& e) {
      error = e.what();
    }
    if (row.contains("error")) {
      EXPECT_FALSE(error.empty()) << name << ": jinja2 fails (" << row.at("error") << "), we rendered " << escaped(got);
    } else {
      EXPECT_EQ(error, "") << name;
      EXPECT_EQ(got, row.at("rendered").get<std::string>()) << name << ": template " << escaped(row.at("template"));
    }
  }
}

}  // namespace
}  // namespace mlaserve::tokenizer
