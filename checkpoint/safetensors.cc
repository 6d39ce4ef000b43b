#include "checkpoint/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/filesystem.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace nightshift {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

size_t DtypeSize(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}};
  for (const auto& [name, size] : kSizes) {
    if (dtype == name) return size;
  }
  return 0;
}

bool IsNonNegativeInteger(const google::protobuf::Value& v) {
  return v.kind_case() == google::protobuf::Value::kNumberValue && v.number_value() >= 0 &&
         v.number_value() <= 9007199254740992.0 &&
         v.number_value() == static_cast<double>(static_cast<uint64_t>(v.number_value()));
}

}  // namespace

void SafetensorsWriter::Add(const std::string& name, const Tensor& tensor) {
  entries_.push_back(
      {name, tensor.shape(),
       std::string(reinterpret_cast<const char*>(tensor.data()), tensor.size() * sizeof(float))});
}

void SafetensorsWriter::AddMetadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

std::string SafetensorsWriter::Serialize() const {
  std::vector<std::string> fields;
  if (!metadata_.empty()) {
    std::vector<std::string> kv;
    for (const auto& [k, v] : metadata_) {
      kv.push_back(absl::StrCat(JsonString(k), ":", JsonString(v)));
    }
    fields.push_back(absl::StrCat("\"__metadata__\":{", absl::StrJoin(kv, ","), "}"));
  }
  size_t offset = 0;
  for (const Entry& e : entries_) {
    fields.push_back(absl::StrCat(JsonString(e.name), ":{\"dtype\":\"F32\",\"shape\":[",
                                  absl::StrJoin(e.shape, ","), "],\"data_offsets\":[", offset, ",",
                                  offset + e.bytes.size(), "]}"));
    offset += e.bytes.size();
  }
  std::string header = absl::StrCat("{", absl::StrJoin(fields, ","), "}");
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  for (const Entry& e : entries_) out += e.bytes;
  return out;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  return WriteFileDurably(path, Serialize());
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), {});
  return Parse(std::move(contents), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(std::string contents,
                                                       const std::string& path) {
  auto invalid = [&path](auto... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parts...));
  };
  if (contents.size() < 8) {
    return invalid("too short for a safetensors header length (", contents.size(),
                   " bytes, need 8)");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(contents[i]);
  if (n > contents.size() - 8) {
    return invalid("header length ", n, " at byte offset 0 runs past the end of the file (",
                   contents.size(), " bytes)");
  }
  SafetensorsFile file;
  file.path_ = path;
  file.data_start_ = 8 + n;
  google::protobuf::Struct header;
  const std::string json = contents.substr(8, n);
  if (json.empty() || json[0] != '{') {
    return invalid("header at byte offset 8 is not a JSON object");
  }
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &header);
  if (!parsed.ok()) {
    return invalid("header at byte offset 8 is not valid JSON: ", parsed.message().as_string());
  }
  const size_t data_size = contents.size() - file.data_start_;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& [name, value] : header.fields()) {
    if (name == "__metadata__") {
      if (!value.has_struct_value()) return invalid("__metadata__ is not an object");
      for (const auto& [k, v] : value.struct_value().fields()) {
        if (v.kind_case() != google::protobuf::Value::kStringValue) {
          return invalid("__metadata__.", k, " is not a string");
        }
        file.metadata_[k] = v.string_value();
      }
      continue;
    }
    if (!value.has_struct_value()) return invalid("tensor ", name, ": not an object");
    const auto& f = value.struct_value().fields();
    auto dtype = f.find("dtype");
    auto shape = f.find("shape");
    auto offsets = f.find("data_offsets");
    if (dtype == f.end() || shape == f.end() || offsets == f.end()) {
      return invalid("tensor ", name, ": needs dtype, shape and data_offsets");
    }
    Info info;
    info.dtype = dtype->second.string_value();
    const size_t item = DtypeSize(info.dtype);
    if (item == 0) return invalid("tensor ", name, ": unknown dtype '", info.dtype, "'");
    if (!shape->second.has_list_value()) return invalid("tensor ", name, ": shape is not a list");
    for (const auto& d : shape->second.list_value().values()) {
      if (!IsNonNegativeInteger(d)) return invalid("tensor ", name, ": bad shape entry");
      info.shape.push_back(static_cast<int64_t>(d.number_value()));
    }
    const auto& off = offsets->second.list_value().values();
    if (off.size() != 2 || !IsNonNegativeInteger(off[0]) || !IsNonNegativeInteger(off[1])) {
      return invalid("tensor ", name, ": data_offsets must be [begin, end]");
    }
    info.begin = static_cast<size_t>(off[0].number_value());
    info.end = static_cast<size_t>(off[1].number_value());
    if (info.begin > info.end || info.end > data_size) {
      return invalid("tensor ", name, ": data_offsets [", info.begin, ", ", info.end,
                     "] fall outside the ", data_size, "-byte data buffer at byte offset ",
                     file.data_start_);
    }
    if (info.end - info.begin != NumElements(info.shape) * item) {
      return invalid("tensor ", name, ": shape ", ShapeToString(info.shape), " of ", info.dtype,
                     " needs ", NumElements(info.shape) * item, " bytes, data_offsets give ",
                     info.end - info.begin);
    }
    ranges.push_back({info.begin, info.end});
    file.tensors_[name] = std::move(info);
  }
  std::sort(ranges.begin(), ranges.end());
  size_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b != covered) {
      return invalid("tensor data ", b < covered ? "overlaps" : "leaves a hole", " at data offset ",
                     std::min(b, covered), " (file byte offset ",
                     file.data_start_ + std::min(b, covered), ")");
    }
    covered = e;
  }
  if (covered != data_size) {
    return invalid("tensors cover ", covered, " of ", data_size, " data bytes");
  }
  file.contents_ = std::move(contents);
  return file;
}

absl::StatusOr<Tensor> SafetensorsFile::GetFloat32(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named ", name));
  }
  if (it->second.dtype != "F32") {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor ", name, " is ", it->second.dtype, ", expected F32"));
  }
  Tensor t(it->second.shape);
  if (t.size() > 0) {
    std::memcpy(t.data(), contents_.data() + data_start_ + it->second.begin,
                t.size() * sizeof(float));
  }
  return t;
}

}  // namespace nightshift
