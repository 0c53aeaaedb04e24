#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "loadgen/sse_parser.h"

namespace mlaserve::loadgen {
namespace {

std::vector<std::string> data_of(const std::vector<SseEvent>& events) {
  std::vector<std::string> out;
  for (const SseEvent& e : events) out.push_back(e.data);
  return out;
}

// A stream as an OpenAI-style server sends it, with every kind of line ending, a comment,
// a multi-line event, a typed event and a field-less line.
const std::string kStream =
    ": keep-alive comment\n\n"
    "data: {\"choices\":[{\"text\":\"a\"}]}\n\n"
    "data: {\"choices\":[{\"text\":\"b\"}]}\r\n\r\n"
    "data:no-space\rdata:  two spaces\r\r"
    "event: ping\nid: 7\ndata: x\n\n"
    "retry: 10\n\n"
    "data: [DONE]\n\n";
const std::vector<std::string> kData = {"{\"choices\":[{\"text\":\"a\"}]}", "{\"choices\":[{\"text\":\"b\"}]}",
                                        "no-space\n two spaces", "x", "[DONE]"};

TEST(SseParser, WholeStream) {
  SseParser p;
  const auto events = p.feed(kStream);
  EXPECT_EQ(data_of(events), kData);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, "message");
  EXPECT_EQ(events[3].type, "ping");
  EXPECT_FALSE(p.pending());
}

// Split into two pieces at every position (between CR and LF too), and byte by byte: the
// same events in the same order.
TEST(SseParser, SplitAnywhere) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    SseParser p;
    auto events = p.feed(std::string_view(kStream).substr(0, cut));
    for (SseEvent& e : p.feed(std::string_view(kStream).substr(cut))) events.push_back(std::move(e));
    EXPECT_EQ(data_of(events), kData) << "cut at " << cut;
  }
  SseParser p;
  std::vector<SseEvent> events;
  for (char c : kStream) {
    for (SseEvent& e : p.feed(std::string_view(&c, 1))) events.push_back(std::move(e));
  }
  EXPECT_EQ(data_of(events), kData);
}

TEST(SseParser, ManyEventsInOnePiece) {
  std::string stream;
  std::vector<std::string> expect;
  for (int i = 0; i < 100; ++i) {
    stream += "data: " + std::to_string(i) + "\n\n";
    expect.push_back(std::to_string(i));
  }
  SseParser p;
  EXPECT_EQ(data_of(p.feed(stream)), expect);
}

TEST(SseParser, IncompleteEventIsPending) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: {\"choices\":").empty());
  EXPECT_TRUE(p.pending());
  EXPECT_TRUE(p.feed("[]}\n").empty());  // the line is complete, the event is not
  EXPECT_TRUE(p.pending());
  EXPECT_EQ(data_of(p.feed("\n")), std::vector<std::string>{"{\"choices\":[]}"});
  EXPECT_FALSE(p.pending());
}

TEST(SseParser, EventWithoutDataIsNotDispatched) {
  SseParser p;
  EXPECT_TRUE(p.feed("event: x\n\n: only a comment\n\n\n\n").empty());
  EXPECT_EQ(data_of(p.feed("data\n\n")), std::vector<std::string>{""});  // a bare "data" field
}

}  // namespace
}  // namespace mlaserve::loadgen
