// Safetensors files that are valid: every dtype through write_safetensors and back, byte-exact
// agreement with the Python library, zero-copy views that outlive the file handle, and the
// aligned-copy fallback. Malformed files are in safetensors_malformed_test.cc.
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "temp_dir.h"

namespace mlaserve {
namespace {

using test_util::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// A tensor whose bytes are 0, 1, 2, ... (mod 251), so every byte position is checked.
Tensor patterned(Shape shape, DType dtype, int seed) {
  Tensor t = Tensor::empty(std::move(shape), dtype);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>((i + seed) % 251);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  const DType dtypes[] = {DType::kBF16, DType::kF16, DType::kF32, DType::kF8E4M3,
                          DType::kI64,  DType::kI32, DType::kU8,  DType::kBool};
  std::vector<std::pair<std::string, Tensor>> tensors;
  int seed = 0;
  for (DType dtype : dtypes) {
    std::string name = "t." + std::string(dtype_name(dtype));
    tensors.emplace_back(name, patterned({3, 5}, dtype, seed++));
  }
  tensors.emplace_back("scalar", patterned({}, DType::kF32, 7));
  tensors.emplace_back("empty", Tensor::empty({0, 4}, DType::kBF16));
  tensors.emplace_back("odd", patterned({3}, DType::kBF16, 9));  // 6 bytes: the next tensor stays aligned
  std::string path = dir.file("model.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "ünïcode"}});

  std::string bytes = read_bytes(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ(header_bytes % 8, 0u);  // the data section starts 8-byte aligned
  EXPECT_EQ(bytes[8], '{');

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "ünïcode"}}));
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    const TensorInfo& info = file->tensors().at(name);
    EXPECT_EQ(info.dtype, tensor.dtype());
    EXPECT_EQ(info.shape, tensor.shape());
    EXPECT_EQ(info.file, path);
    EXPECT_EQ(info.end - info.begin, tensor.nbytes());
    EXPECT_EQ(info.begin % dtype_size(info.dtype), 0u);
    Tensor read = file->get(name);
    EXPECT_EQ(read.dtype(), tensor.dtype());
    EXPECT_EQ(read.shape(), tensor.shape());
    EXPECT_TRUE(same_bytes(read, tensor));
  }
  EXPECT_EQ(file->get("t.F32").to_vector(), tensors[2].second.to_vector());
}

// safetensors 0.8.0 (Python), safetensors.numpy.save_file(
//   {"b": int32 [[1, 2], [3, 4]], "a": float16 [1.5, -2.0, 0.25], "z": bool [True, False],
//    "c": int64 [0, 1, 2]}, path, metadata={"format": "np"})
// wrote exactly these 312 bytes.
std::string python_reference_file() {
  std::string bytes("\x00\x01\x00\x00\x00\x00\x00\x00", 8);  // header length 256
  bytes += R"({"__metadata__":{"format":"np"},"c":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
           R"("b":{"dtype":"I32","shape":[2,2],"data_offsets":[24,40]},"a":{"dtype":"F16","shape":[3],)"
           R"("data_offsets":[40,46]},"z":{"dtype":"BOOL","shape":[2],"data_offsets":[46,48]}}  )";
  bytes += from_hex(
      "000000000000000001000000000000000200000000000000"
      "01000000020000000300000004000000"
      "003e00c00034"
      "0100");
  return bytes;
}

TEST(Safetensors, ReadsWhatPythonWrites) {
  TempDir dir;
  std::string reference = python_reference_file();
  ASSERT_EQ(reference.size(), 312u);
  auto file = SafetensorsFile::open(dir.write("python.safetensors", reference));
  EXPECT_EQ(file->metadata().at("format"), "np");
  EXPECT_EQ(file->get("a").to_vector(), (std::vector<float>{1.5f, -2.0f, 0.25f}));
  EXPECT_EQ(file->get("b").shape(), (Shape{2, 2}));
  EXPECT_EQ(file->get("b").data<int32_t>()[3], 4);
  EXPECT_EQ(file->get("c").data<int64_t>()[2], 2);
  EXPECT_EQ(file->get("z").data<bool>()[0], true);
  EXPECT_EQ(file->get("z").data<bool>()[1], false);
}

TEST(Safetensors, WritesWhatPythonWrites) {
  TempDir dir;
  Tensor b = Tensor::empty({2, 2}, DType::kI32);
  for (int i = 0; i < 4; ++i) b.data<int32_t>()[i] = i + 1;
  Tensor a = Tensor::from_floats({1.5f, -2.0f, 0.25f}, {3}, DType::kF16);
  Tensor z = Tensor::empty({2}, DType::kBool);
  z.data<bool>()[0] = true;
  z.data<bool>()[1] = false;
  Tensor c = Tensor::empty({3}, DType::kI64);
  for (int i = 0; i < 3; ++i) c.data<int64_t>()[i] = i;
  std::string path = dir.file("ours.safetensors");
  write_safetensors(path, {{"b", b}, {"a", a}, {"z", z}, {"c", c}}, {{"format", "np"}});
  EXPECT_EQ(read_bytes(path), python_reference_file());
}

TEST(Safetensors, ViewsKeepTheMappingAlive) {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"w", Tensor::from_floats({1, 2, 3, 4}, {2, 2}, DType::kF32)}});
  auto file = SafetensorsFile::open(path);
  Tensor view = file->get("w");
  std::weak_ptr<SafetensorsFile> weak = file;
  file.reset();
  EXPECT_FALSE(weak.expired());  // the view holds the file, and so the mapping
  EXPECT_EQ(view.to_vector(), (std::vector<float>{1, 2, 3, 4}));
  view = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(Safetensors, ViewIsZeroCopy) {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"w", Tensor::from_floats({1, 2}, {2}, DType::kF32)}});
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->get("w").raw(), file->get("w").raw());
}

// A writer that does not pad the header leaves tensors misaligned; they come back as aligned
// copies with the right values (reading a misaligned float in place would be undefined).
TEST(Safetensors, MisalignedTensorIsCopied) {
  TempDir dir;
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";  // 53 bytes: unpadded
  ASSERT_NE(header.size() % 4, 0u);
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header;
  float values[2] = {3.5f, -1.25f};
  bytes.append(reinterpret_cast<const char*>(values), sizeof(values));
  auto file = SafetensorsFile::open(dir.write("unaligned.safetensors", bytes));
  Tensor x = file->get("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw()) % 4, 0u);
  EXPECT_EQ(x.to_vector(), (std::vector<float>{3.5f, -1.25f}));
}

TEST(Safetensors, EmptyHeaderAndGaps) {
  TempDir dir;
  std::string empty = std::string("\x08\0\0\0\0\0\0\0", 8) + "{}      ";
  EXPECT_TRUE(SafetensorsFile::open(dir.write("empty.safetensors", empty))->tensors().empty());

  // Unused bytes between tensors are allowed; only overlaps are not.
  std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}} )";
  std::string bytes =
      std::string(1, static_cast<char>(header.size())) + std::string(7, '\0') + header + "ab..c";
  auto file = SafetensorsFile::open(dir.write("gaps.safetensors", bytes));
  EXPECT_EQ(file->get("b").data<uint8_t>()[0], 'c');
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  Tensor t = Tensor::zeros({2}, DType::kF32);
  std::string twice = test_util::error_message([&] { write_safetensors(path, {{"w", t}, {"w", t}}); });
  EXPECT_NE(twice.find(path + ": tensor 'w' is given twice"), std::string::npos) << twice;
  std::string reserved = test_util::error_message([&] { write_safetensors(path, {{"__metadata__", t}}); });
  EXPECT_NE(reserved.find("'__metadata__' cannot be a tensor name"), std::string::npos) << reserved;
  std::string undefined = test_util::error_message([&] { write_safetensors(path, {{"u", Tensor()}}); });
  EXPECT_NE(undefined.find("tensor 'u' is undefined"), std::string::npos) << undefined;
  std::string no_dir = dir.file("missing/dir/x.safetensors");
  std::string unwritable = test_util::error_message([&] { write_safetensors(no_dir, {{"w", t}}); });
  EXPECT_NE(unwritable.find(no_dir + ": cannot create"), std::string::npos) << unwritable;
}

TEST(Safetensors, UnknownTensorNamesFileAndTensor) {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"w", Tensor::zeros({1}, DType::kF32)}});
  auto file = SafetensorsFile::open(path);
  EXPECT_FALSE(file->contains("v"));
  std::string message = test_util::error_message([&] { file->get("v"); });
  EXPECT_NE(message.find(path + ": no tensor 'v'"), std::string::npos) << message;
}

}  // namespace
}  // namespace mlaserve
