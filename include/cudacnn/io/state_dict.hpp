// State dicts (named tensors, PyTorch's state_dict names and order) and training checkpoints, kept in
// safetensors files that PyTorch reads and writes: weights interchange both ways by name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/float16.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::io {

// Named tensors in insertion order (PyTorch's state_dict order): float values, or int64
// (num_batches_tracked).
class StateDict {
  public:
    void put(const std::string& name, HostTensor<float> value);  // replaces an existing entry in place
    void put(const std::string& name, HostTensor<int64_t> value);
    bool contains(const std::string& name) const { return index_.count(name) != 0; }
    const HostTensor<float>& f32(const std::string& name) const;  // Error naming the entry when absent or int
    const HostTensor<int64_t>& i64(const std::string& name) const;
    DType dtype(const std::string& name) const;  // DType::f32 or DType::i64
    const Shape& shape(const std::string& name) const;
    const std::vector<std::string>& names() const { return names_; }
    int64_t size() const { return static_cast<int64_t>(names_.size()); }

  private:
    using Value = std::variant<HostTensor<float>, HostTensor<int64_t>>;
    const Value& at(const std::string& name) const;
    void put_value(const std::string& name, Value value);

    std::vector<std::string> names_;
    std::vector<Value> values_;  // values_[i] is names_[i]'s
    std::unordered_map<std::string, size_t> index_;
};

// Floats stored as `floats`; int64 entries as I64 (PyTorch's dtype for num_batches_tracked). The metadata
// goes to the header's "__metadata__", with "format": "pt" added unless it has a "format" (PyTorch's
// safetensors writes that, and some loaders ask for it). Written atomically (see SafetensorsFile::write), in
// state order.
void save_state_dict(const StateDict& state, const std::string& path, FloatStorage floats = FloatStorage::f32,
                     const std::map<std::string, std::string>& metadata = {});
// F64/F32/F16/BF16 → float; I64/I32 → int64; in the file's data order (insertion order for files saved here
// and for PyTorch's). A checkpoint (below) gives its model part. Errors name the file and the tensor.
StateDict load_state_dict(const std::string& path);

// What a model expects of a loaded state dict, as PyTorch's strict load_state_dict: one Error listing every
// missing key, unexpected key and shape mismatch ("size mismatch for fc_layer.1.weight: the file has
// (1024, 4095), the model needs (1024, 4096)"), naming the file. Float kinds (f32, f16, bf16) match a loaded
// float entry and integer kinds (i64, i32) a loaded int64 one; anything else is a dtype mismatch.
struct ExpectedEntry {
    std::string name;
    Shape shape;
    DType dtype;
};
void check_state_dict(const StateDict& loaded, const std::vector<ExpectedEntry>& expected,
                      const std::string& path);

// A training checkpoint in one safetensors file: model tensors under "model.<name>", optimizer tensors under
// "optimizer.<name>" (floats as F32, so a resumed run continues exactly), and `meta` (epoch, step,
// configuration, RNG seed, format version, …) as JSON in the "__metadata__" entry "cudacnn.checkpoint".
// The metadata also holds a magic ("cudacnn.magic": "cudacnn-checkpoint"), the layout version
// ("cudacnn.checkpoint_layout": "2") and a checksum ("cudacnn.checksum": "fnv1a64:<16 hex digits>", FNV-1a
// over the other metadata entries and every tensor's name, dtype, shape and bytes); other safetensors readers
// read the file as usual.
struct Checkpoint {
    StateDict model;
    StateDict optimizer;
    nlohmann::json meta;
    // Whether load_checkpoint verified a checksum: false for layout-1 files, written before checksums (they
    // still load), and for a Checkpoint not loaded from a file.
    bool checksum_verified = false;
};
void save_checkpoint(const Checkpoint& checkpoint, const std::string& path);  // atomic, as save_state_dict
// Errors name the file and say it is not a cudacnn checkpoint, or what is damaged (truncated, checksum
// mismatch, missing magic, a newer layout) and to resume from the previous checkpoint. Never writes the file.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace cudacnn::io
