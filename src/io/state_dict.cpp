// State dicts and checkpoints in safetensors files (see include/cudacnn/io/state_dict.hpp).
#include "cudacnn/io/state_dict.hpp"

#include <cstdint>
#include <unordered_set>

#include <fmt/format.h>

#include "cudacnn/error_text.hpp"
#include "cudacnn/json_parse.hpp"
#include "cudacnn/safetensors.hpp"

namespace cudacnn::io {

namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kCheckpointKey = "cudacnn.checkpoint";  // __metadata__ entry holding Checkpoint::meta
// How the file is laid out (prefixes, metadata keys), versioned apart from whatever the caller puts in meta.
// Version 2 adds the magic and the checksum; version-1 files (no checksum) still load, unverified.
constexpr const char* kLayoutKey = "cudacnn.checkpoint_layout";
constexpr const char* kLayoutVersion = "2";
constexpr const char* kUncheckedLayoutVersion = "1";
constexpr const char* kMagicKey = "cudacnn.magic";
constexpr const char* kMagic = "cudacnn-checkpoint";
// FNV-1a (64 bits) over every metadata entry but itself and every tensor's name, dtype, shape and bytes, so
// that a flipped bit anywhere in the file (that still parses) shows as a mismatch.
constexpr const char* kChecksumKey = "cudacnn.checksum";
constexpr const char* kChecksumPrefix = "fnv1a64:";
// What to do about a checkpoint that does not load: every such error ends with it.
constexpr const char* kDamagedAdvice =
    "the file is damaged or was not written completely; resume from the previous checkpoint in its folder "
    "(the file is left as it is)";

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.compare(0, prefix.size(), prefix) == 0;
}

bool is_float_kind(DType dtype) {
    return dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16;
}
bool is_int_kind(DType dtype) {
    return dtype == DType::i64 || dtype == DType::i32;
}

void put_entries(SafetensorsFile& file, const StateDict& state, const std::string& prefix,
                 FloatStorage floats) {
    for (const std::string& name : state.names()) {
        if (state.dtype(name) == DType::i64) {
            file.put(prefix + name, state.i64(name));
        } else {
            file.put(prefix + name, state.f32(name), floats);
        }
    }
}

// The stored tensor `stored_name` as entry `name`: floats of any width as float, integers as int64.
void take_entry(StateDict& state, const SafetensorsFile& file, const std::string& stored_name,
                const std::string& name) {
    const std::string& dtype = file.tensor(stored_name).dtype;
    if (dtype == "F64" || dtype == "F32" || dtype == "F16" || dtype == "BF16") {
        state.put(name, file.get<float>(stored_name));
    } else if (dtype == "I64" || dtype == "I32") {
        state.put(name, file.get<int64_t>(stored_name));
    } else {
        CUDACNN_FAIL(
            "{}: tensor '{}' is {}; a state dict holds floats (F64, F32, F16, BF16) or integers (I64, I32)",
            file.path(), stored_name, dtype);
    }
}

class Fnv1a64 {
  public:
    void add(const void* data, size_t size) {
        const auto* bytes = static_cast<const uint8_t*>(data);
        for (size_t i = 0; i < size; ++i) hash_ = (hash_ ^ bytes[i]) * 0x100000001b3ULL;
    }
    // Strings with their length first, so that ("ab", "c") and ("a", "bc") differ.
    void add_text(const std::string& text) {
        add_number(text.size());
        add(text.data(), text.size());
    }
    void add_number(uint64_t value) { add(&value, sizeof value); }
    std::string hex() const { return fmt::format("{}{:016x}", kChecksumPrefix, hash_); }

  private:
    uint64_t hash_ = 0xcbf29ce484222325ULL;
};

std::string checksum(const SafetensorsFile& file) {
    Fnv1a64 hash;
    for (const auto& [key, value] : file.metadata()) {
        if (key == kChecksumKey) continue;
        hash.add_text(key);
        hash.add_text(value);
    }
    for (const std::string& name : file.names_in_file_order()) {
        const StoredTensor& tensor = file.tensor(name);
        hash.add_text(name);
        hash.add_text(tensor.dtype);
        hash.add_number(tensor.shape.dims().size());
        for (const int64_t dim : tensor.shape.dims()) hash.add_number(static_cast<uint64_t>(dim));
        hash.add_number(tensor.bytes.size());
        hash.add(tensor.bytes.data(), tensor.bytes.size());
    }
    return hash.hex();
}

// The layout version after checking the magic and, for version 2, the checksum; the Errors say what to do.
std::string check_integrity(const SafetensorsFile& file, const std::string& path) {
    const auto& metadata = file.metadata();
    const auto layout = metadata.find(kLayoutKey);
    const std::string version = layout == metadata.end() ? "(none)" : layout->second;
    if (version == kUncheckedLayoutVersion) return version;
    CUDACNN_CHECK(version == kLayoutVersion,
                  "{}: the checkpoint layout is version '{}'; this cudacnn reads versions {} and {} (a newer "
                  "cudacnn wrote it? load it with that one, or resume from a checkpoint this one wrote)",
                  path, version, kUncheckedLayoutVersion, kLayoutVersion);
    const auto magic = metadata.find(kMagicKey);
    CUDACNN_CHECK(magic != metadata.end() && magic->second == kMagic,
                  "{}: the checkpoint's magic (\"{}\") is {} rather than \"{}\"; {}", path, kMagicKey,
                  magic == metadata.end() ? "missing" : "\"" + magic->second + "\"", kMagic, kDamagedAdvice);
    const auto stored = metadata.find(kChecksumKey);
    CUDACNN_CHECK(stored != metadata.end(), "{}: the checkpoint has no checksum (\"{}\"); {}", path,
                  kChecksumKey, kDamagedAdvice);
    const std::string computed = checksum(file);
    CUDACNN_CHECK(stored->second == computed,
                  "{}: the checkpoint's checksum does not match its contents (stored {}, computed {}): {}", path,
                  stored->second, computed, kDamagedAdvice);
    return version;
}

std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) out += (out.empty() ? "\"" : ", \"") + name + "\"";
    return out;
}

}  // namespace

const StateDict::Value& StateDict::at(const std::string& name) const {
    const auto it = index_.find(name);
    CUDACNN_CHECK(it != index_.end(), "state dict: no entry '{}' (it has {} entries)", name, names_.size());
    return values_[it->second];
}

void StateDict::put_value(const std::string& name, Value value) {
    const auto it = index_.find(name);
    if (it != index_.end()) {
        values_[it->second] = std::move(value);
        return;
    }
    index_.emplace(name, names_.size());
    names_.push_back(name);
    values_.push_back(std::move(value));
}

void StateDict::put(const std::string& name, HostTensor<float> value) {
    put_value(name, std::move(value));
}
void StateDict::put(const std::string& name, HostTensor<int64_t> value) {
    put_value(name, std::move(value));
}

const HostTensor<float>& StateDict::f32(const std::string& name) const {
    const Value& value = at(name);
    CUDACNN_CHECK(std::holds_alternative<HostTensor<float>>(value), "state dict: entry '{}' is i64, not f32",
                  name);
    return std::get<HostTensor<float>>(value);
}

const HostTensor<int64_t>& StateDict::i64(const std::string& name) const {
    const Value& value = at(name);
    CUDACNN_CHECK(std::holds_alternative<HostTensor<int64_t>>(value),
                  "state dict: entry '{}' is f32, not i64", name);
    return std::get<HostTensor<int64_t>>(value);
}

DType StateDict::dtype(const std::string& name) const {
    return std::holds_alternative<HostTensor<float>>(at(name)) ? DType::f32 : DType::i64;
}

const Shape& StateDict::shape(const std::string& name) const {
    return std::visit([](const auto& tensor) -> const Shape& { return tensor.shape(); }, at(name));
}

void save_state_dict(const StateDict& state, const std::string& path, FloatStorage floats,
                     const std::map<std::string, std::string>& metadata) {
    SafetensorsFile file;
    file.metadata() = metadata;
    file.metadata().emplace("format", "pt");  // kept when the caller gave a format
    put_entries(file, state, "", floats);
    file.write(path);
}

StateDict load_state_dict(const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read(path);
    if (file.metadata().count(kCheckpointKey) != 0) return load_checkpoint(path).model;
    StateDict state;
    for (const std::string& name : file.names_in_file_order()) take_entry(state, file, name, name);
    return state;
}

void check_state_dict(const StateDict& loaded, const std::vector<ExpectedEntry>& expected,
                      const std::string& path) {
    std::vector<std::string> missing, unexpected, mismatches;
    std::unordered_set<std::string> wanted;
    for (const ExpectedEntry& entry : expected) {
        wanted.insert(entry.name);
        if (!loaded.contains(entry.name)) {
            missing.push_back(entry.name);
            continue;
        }
        const Shape& has = loaded.shape(entry.name);
        if (has != entry.shape) {
            mismatches.push_back(fmt::format("size mismatch for {}: the file has {}, the model needs {}",
                                             entry.name, has.to_string(), entry.shape.to_string()));
        }
        const DType dtype = loaded.dtype(entry.name);
        if (!(dtype == DType::f32 ? is_float_kind(entry.dtype) : is_int_kind(entry.dtype))) {
            mismatches.push_back(fmt::format("dtype mismatch for {}: the file has {}, the model needs {}",
                                             entry.name, dtype_name(dtype), dtype_name(entry.dtype)));
        }
    }
    for (const std::string& name : loaded.names()) {
        if (wanted.count(name) == 0) unexpected.push_back(name);
    }
    if (missing.empty() && unexpected.empty() && mismatches.empty()) return;

    std::string problems;
    if (!missing.empty()) {
        problems += "\n  missing keys (the model has them, the file not): " + quoted_list(missing);
    }
    if (!unexpected.empty()) {
        problems += "\n  unexpected keys (the file has them, the model not): " + quoted_list(unexpected);
    }
    for (const std::string& mismatch : mismatches) problems += "\n  " + mismatch;
    CUDACNN_FAIL(
        "{}: the state dict does not fit the model:{}\n  (load a file saved from this model: the same "
        "layers, sizes and names)",
        path, problems);
}

void save_checkpoint(const Checkpoint& checkpoint, const std::string& path) {
    SafetensorsFile file;
    file.metadata() = {{"format", "pt"},
                       {kMagicKey, kMagic},
                       {kLayoutKey, kLayoutVersion},
                       {kCheckpointKey, checkpoint.meta.dump()}};
    put_entries(file, checkpoint.model, kModelPrefix, FloatStorage::f32);
    put_entries(file, checkpoint.optimizer, kOptimizerPrefix, FloatStorage::f32);
    file.metadata()[kChecksumKey] = checksum(file);
    file.write(path);
}

Checkpoint load_checkpoint(const std::string& path) {
    SafetensorsFile file;
    try {
        file = SafetensorsFile::read(path);
    } catch (const Error& e) {
        CUDACNN_FAIL("{}; {}", without_location(e), kDamagedAdvice);
    }
    const auto& metadata = file.metadata();
    const auto meta_text = metadata.find(kCheckpointKey);
    CUDACNN_CHECK(
        meta_text != metadata.end(),
        "{}: not a cudacnn checkpoint: its safetensors metadata has no \"{}\" entry (a plain state dict "
        "loads with load_state_dict)",
        path, kCheckpointKey);
    Checkpoint checkpoint;
    checkpoint.checksum_verified = check_integrity(file, path) == kLayoutVersion;
    try {
        checkpoint.meta = parse_json_limited(path, meta_text->second);
    } catch (const nlohmann::json::exception& e) {
        CUDACNN_FAIL("{}: the checkpoint's metadata (\"{}\") is damaged: {}; {}", path, kCheckpointKey, e.what(),
                     kDamagedAdvice);
    }
    for (const std::string& name : file.names_in_file_order()) {
        if (starts_with(name, kModelPrefix)) {
            take_entry(checkpoint.model, file, name, name.substr(std::string(kModelPrefix).size()));
        } else if (starts_with(name, kOptimizerPrefix)) {
            take_entry(checkpoint.optimizer, file, name, name.substr(std::string(kOptimizerPrefix).size()));
        } else {
            CUDACNN_FAIL(
                "{}: the checkpoint's tensor '{}' is neither \"{}…\" nor \"{}…\"; the file is damaged", path,
                name, kModelPrefix, kOptimizerPrefix);
        }
    }
    return checkpoint;
}

}  // namespace cudacnn::io
