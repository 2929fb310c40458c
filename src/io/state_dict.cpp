// State dicts and checkpoints in safetensors files (see include/cudacnn/io/state_dict.hpp).
#include "cudacnn/io/state_dict.hpp"

#include <unordered_set>

#include <fmt/format.h>

#include "cudacnn/safetensors.hpp"

namespace cudacnn::io {

namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kCheckpointKey = "cudacnn.checkpoint";  // __metadata__ entry holding Checkpoint::meta
// How the file is laid out (prefixes, metadata keys), versioned apart from whatever the caller puts in meta.
constexpr const char* kLayoutKey = "cudacnn.checkpoint_layout";
constexpr const char* kLayoutVersion = "1";

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
    file.metadata() = {
        {"format", "pt"}, {kLayoutKey, kLayoutVersion}, {kCheckpointKey, checkpoint.meta.dump()}};
    put_entries(file, checkpoint.model, kModelPrefix, FloatStorage::f32);
    put_entries(file, checkpoint.optimizer, kOptimizerPrefix, FloatStorage::f32);
    file.write(path);
}

Checkpoint load_checkpoint(const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read(path);
    const auto& metadata = file.metadata();
    const auto meta_text = metadata.find(kCheckpointKey);
    CUDACNN_CHECK(
        meta_text != metadata.end(),
        "{}: not a cudacnn checkpoint: its safetensors metadata has no \"{}\" entry (a plain state dict "
        "loads with load_state_dict)",
        path, kCheckpointKey);
    const auto layout = metadata.find(kLayoutKey);
    CUDACNN_CHECK(layout != metadata.end() && layout->second == kLayoutVersion,
                  "{}: the checkpoint layout is version '{}'; this cudacnn reads version {} (a newer cudacnn "
                  "wrote it?)",
                  path, layout == metadata.end() ? "(none)" : layout->second, kLayoutVersion);

    Checkpoint checkpoint;
    try {
        checkpoint.meta = nlohmann::json::parse(meta_text->second);
    } catch (const nlohmann::json::exception& e) {
        CUDACNN_FAIL("{}: the checkpoint's metadata (\"{}\") is damaged: {}", path, kCheckpointKey, e.what());
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
