// Checkpoint: the tensors of a model directory, across its safetensors shards.
//
// With model.safetensors.index.json, the index's weight_map (tensor name -> shard file) defines
// the checkpoint and must agree exactly with the shards: every listed shard exists, every listed
// tensor is in its shard, and every tensor of a listed shard is listed for that shard. Files the
// index does not name are not part of the checkpoint. Without an index, every *.safetensors file
// in the directory is, and no tensor may appear in two of them.
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "model/json_fields.h"
#include "model/safetensors.h"

namespace mlaserve {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexName = "model.safetensors.index.json";

struct Opened {
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  std::map<std::string, size_t> where;
};

// A shard named by the index must be a plain path inside the checkpoint directory.
bool is_inside_directory(const std::string& shard) {
  fs::path p(shard);
  if (shard.empty() || p.is_absolute()) return false;
  for (const fs::path& part : p) {
    if (part == "..") return false;
  }
  return true;
}

std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  std::string source = index.string();
  nlohmann::json document = parse_json_strict(read_text_file(source), source);
  JsonFields root(document, source);
  std::optional<JsonFields> map = root.get_object("weight_map");
  if (!map) root.fail("weight_map", "is required");
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : map->value().items()) {
    if (!shard.is_string()) map->fail(name, "must be a shard file name, got " + json_describe(shard));
    std::string file = shard.get<std::string>();
    if (!is_inside_directory(file)) {
      MLA_FAIL("{}: tensor '{}': shard '{}' is not a file inside the checkpoint directory", source, name,
               file);
    }
    weight_map.emplace(name, std::move(file));
  }
  if (weight_map.empty()) MLA_FAIL("{}: weight_map lists no tensors", source);
  return weight_map;
}

Opened open_indexed(const fs::path& dir, const fs::path& index) {
  std::map<std::string, std::string> weight_map = read_weight_map(index);
  Opened out;
  std::map<std::string, size_t> shard_slot;  // shard file name -> index into out.files
  for (const auto& [name, shard] : weight_map) {
    if (shard_slot.count(shard) != 0) continue;
    fs::path shard_path = dir / shard;
    std::error_code ec;
    if (!fs::exists(shard_path, ec)) {
      MLA_FAIL("{}: tensor '{}': shard '{}' does not exist ({})", index.string(), name, shard,
               shard_path.string());
    }
    shard_slot.emplace(shard, out.files.size());
    out.files.push_back(SafetensorsFile::open(shard_path.string()));
  }
  for (const auto& [name, shard] : weight_map) {
    const SafetensorsFile& file = *out.files[shard_slot.at(shard)];
    if (!file.contains(name)) {
      MLA_FAIL("{}: tensor '{}' is listed for this shard in {} but is not in it", file.path(), name,
               kIndexName);
    }
    out.where.emplace(name, shard_slot.at(shard));
  }
  for (const auto& [shard, slot] : shard_slot) {
    const SafetensorsFile& file = *out.files[slot];
    for (const auto& [name, info] : file.tensors()) {
      auto listed = weight_map.find(name);
      if (listed == weight_map.end()) {
        MLA_FAIL("{}: tensor '{}' is not listed in {}", file.path(), name, kIndexName);
      }
      if (listed->second != shard) {
        MLA_FAIL("{}: tensor '{}' is also in this shard, but {} lists it in '{}'", file.path(), name,
                 kIndexName, listed->second);
      }
    }
  }
  return out;
}

Opened open_all(const fs::path& dir) {
  std::set<fs::path> paths;  // sorted, so the order of files does not depend on the filesystem
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".safetensors" && it->is_regular_file(ec)) paths.insert(it->path());
  }
  if (ec) MLA_FAIL("{}: cannot list the directory: {}", dir.string(), ec.message());
  if (paths.empty()) MLA_FAIL("{}: no {} and no *.safetensors files", dir.string(), kIndexName);
  Opened out;
  for (const fs::path& path : paths) {
    out.files.push_back(SafetensorsFile::open(path.string()));
    const SafetensorsFile& file = *out.files.back();
    for (const auto& [name, info] : file.tensors()) {
      auto [it, inserted] = out.where.emplace(name, out.files.size() - 1);
      if (!inserted) {
        MLA_FAIL("{}: tensor '{}' is also in {}", file.path(), name, out.files[it->second]->path());
      }
    }
  }
  return out;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) MLA_FAIL("{}: not a checkpoint directory", dir);
  fs::path index = fs::path(dir) / kIndexName;
  Opened opened = fs::exists(index, ec) ? open_indexed(dir, index) : open_all(dir);
  Checkpoint checkpoint;
  checkpoint.dir_ = dir;
  checkpoint.files_ = std::move(opened.files);
  checkpoint.where_ = std::move(opened.where);
  return checkpoint;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) MLA_FAIL("{}: checkpoint has no tensor '{}'", dir_, name);
  return files_[it->second]->tensors().at(name);
}

Tensor Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) MLA_FAIL("{}: checkpoint has no tensor '{}'", dir_, name);
  return files_[it->second]->get(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, slot] : where_) out.push_back(name);
  return out;
}

}  // namespace mlaserve
