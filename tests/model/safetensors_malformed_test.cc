// Malformed safetensors files: each must give an mlaserve::Error whose message starts with the
// file's path and names the tensor where there is one. These run under ASan + UBSan in CI: a
// parser that read past the mapping or trusted a length would show up there too.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/safetensors.h"
#include "temp_dir.h"

namespace mlaserve {
namespace {

using test_util::TempDir;

std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

// A file with a correct header length: 8 bytes, the header, then `data_bytes` zero bytes.
std::string with_header(const std::string& header, size_t data_bytes = 16) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

std::string one_tensor(const std::string& entry) { return with_header(R"({"w":)" + entry + "}"); }

struct MalformedCase {
  const char* name;
  std::string bytes;
  const char* expected;  // must appear in the message after "<path>: "
};

std::ostream& operator<<(std::ostream& os, const MalformedCase& c) { return os << c.name; }

const MalformedCase kCases[] = {
    {"EmptyFile", "", "file is 0 bytes, shorter than the 8-byte header length"},
    {"FiveBytes", "\x01\x02\x03\x04\x05", "file is 5 bytes"},
    {"HeaderLengthPastEnd", le64(1000) + "{}", "header length 1000 runs past the end of the file (10 bytes)"},
    {"HeaderLengthAbsurd", le64(1ull << 63) + "{}", "header length 9223372036854775808 runs past the end"},
    {"HeaderEmpty", le64(0) + "data", "invalid JSON"},
    {"HeaderNotJson", with_header("not json"), "invalid JSON"},
    {"HeaderTruncatedJson", with_header(R"({"w":{"dtype":"F32")"), "invalid JSON"},
    {"HeaderInvalidUtf8", with_header("{\"w\xff\":{}}"), "invalid JSON"},
    {"HeaderNotObject", with_header("[1, 2]"), "header must be a JSON object, got array"},
    {"EntryNotObject", one_tensor("5"), "tensor 'w': entry must be an object, got number 5"},
    {"DtypeMissing", one_tensor(R"({"shape":[1],"data_offsets":[0,4]})"), "tensor 'w': missing 'dtype'"},
    {"DtypeUnknown", one_tensor(R"({"dtype":"F64","shape":[1],"data_offsets":[0,8]})"),
     "tensor 'w': unsupported dtype \"F64\""},
    {"DtypeNotString", one_tensor(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"),
     "tensor 'w': dtype must be a string, got number 4"},
    {"ShapeMissing", one_tensor(R"({"dtype":"F32","data_offsets":[0,4]})"), "tensor 'w': missing 'shape'"},
    {"ShapeNotList", one_tensor(R"({"dtype":"F32","shape":"4","data_offsets":[0,4]})"),
     "tensor 'w': shape must be a list, got string"},
    {"ShapeNegative", one_tensor(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"),
     "tensor 'w': shape must be a list of non-negative integers, got [-1]"},
    {"ShapeFloat", one_tensor(R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})"),
     "tensor 'w': shape must be a list of non-negative integers"},
    {"ShapeOverflows", one_tensor(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]})"),
     "tensor 'w': shape [4611686018427387904, 4] is too large"},
    {"OffsetsMissing", one_tensor(R"({"dtype":"F32","shape":[1]})"), "tensor 'w': missing 'data_offsets'"},
    {"OffsetsThreeNumbers", one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"),
     "tensor 'w': data_offsets must be [begin, end]"},
    {"OffsetsNegative", one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"),
     "tensor 'w': data_offsets must be [begin, end] with non-negative integers"},
    {"OffsetsNotList", one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":{"begin":0}})"),
     "tensor 'w': data_offsets must be [begin, end]"},
    {"BeginPastEnd", one_tensor(R"({"dtype":"U8","shape":[0],"data_offsets":[8,4]})"),
     "tensor 'w': data_offsets [8, 4] begin past their end"},
    {"RangePastDataSection", one_tensor(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})"),
     "tensor 'w': data_offsets [0, 32] run past the end of the data section (16 bytes)"},
    {"OffsetBeyondInt64",
     one_tensor(R"({"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]})"),
     "tensor 'w': data_offsets must be [begin, end] with non-negative integers"},
    {"SizeMismatch", one_tensor(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})"),
     "tensor 'w': shape [2, 2] of F32 needs 16 bytes, but data_offsets [0, 12] span 12"},
    {"RangesOverlap",
     with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
     "tensor 'b' [4, 12) overlaps tensor 'a' [0, 8)"},
    {"DuplicateTensor",
     with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
     "duplicate key 'w'"},
    {"DuplicateFieldInEntry", one_tensor(R"({"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]})"),
     "duplicate key 'dtype' in object 'w'"},
    {"ShapeNestedDeep",  // 200,000 levels: the message's dump of it once overflowed the stack
     one_tensor(R"({"dtype":"F32","shape":)" + std::string(200000, '[') + std::string(200000, ']') +
                R"(,"data_offsets":[0,4]})"),
     "arrays and objects nest deeper than 64 levels"},
    {"MetadataNotObject", with_header(R"({"__metadata__":"pt"})"),
     "__metadata__ must be an object of strings, got string \"pt\""},
    {"MetadataValueNotString", with_header(R"({"__metadata__":{"format":1}})"),
     "__metadata__ must map strings to strings, but 'format' is number 1"},
};

class SafetensorsMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(SafetensorsMalformed, NamesFileAndTensor) {
  const MalformedCase& c = GetParam();
  TempDir dir;
  std::string path = dir.write("bad.safetensors", c.bytes);
  std::string message = test_util::error_message([&] { SafetensorsFile::open(path); });
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;  // starts with the file's path
  EXPECT_NE(message.find(c.expected), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsMalformed, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

// A header past the 100 MB limit (a sparse file, so the test writes almost nothing).
TEST(SafetensorsMalformedFile, HeaderOverTheLimit) {
  TempDir dir;
  std::string path = dir.write("huge.safetensors", le64(100'000'001) + "{");
  ASSERT_EQ(::truncate(path.c_str(), 8 + 100'000'001 + 8), 0);
  std::string message = test_util::error_message([&] { SafetensorsFile::open(path); });
  EXPECT_NE(message.find(path + ": header length 100000001 exceeds the 100000000-byte limit"),
            std::string::npos)
      << message;
}

TEST(SafetensorsMalformedFile, MissingFileAndDirectory) {
  TempDir dir;
  std::string missing = dir.file("absent.safetensors");
  std::string message = test_util::error_message([&] { SafetensorsFile::open(missing); });
  EXPECT_NE(message.find(missing + ": cannot open"), std::string::npos) << message;
  std::string directory = dir.path().string();
  message = test_util::error_message([&] { SafetensorsFile::open(directory); });
  EXPECT_NE(message.find(directory + ": not a regular file"), std::string::npos) << message;
}

}  // namespace
}  // namespace mlaserve
