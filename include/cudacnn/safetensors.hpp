// Reading and writing the safetensors format (an 8-byte header length, a JSON header naming each tensor's
// dtype, shape and byte range plus an optional "__metadata__" string map, then the raw little-endian data):
// PyTorch-made test fixtures, and weights that interchange with PyTorch by state_dict name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/float16.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn {

// One stored tensor: its safetensors dtype ("F32", "F64", "I64", ...), shape and raw bytes.
struct StoredTensor {
    std::string dtype;
    Shape shape;
    std::vector<uint8_t> bytes;
};

class SafetensorsFile {
  public:
    // Reads the whole file and validates it as the safetensors reference does (header inside the file, known
    // dtypes, shape × dtype size = byte range, byte ranges inside the data, neither overlapping nor leaving
    // gaps); throws Error naming the file, the tensor and what is wrong.
    static SafetensorsFile read(const std::string& path);

    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    std::vector<std::string> names() const;  // sorted
    // In the order of their data in the file; for files cudacnn writes, the order of the first put() of each.
    const std::vector<std::string>& names_in_file_order() const { return order_; }
    const StoredTensor& tensor(const std::string& name) const;  // throws Error naming the file and tensor

    // A tensor as HostTensor<T>, converting F64/F32/F16/BF16/I64/I32/U8 values to T.
    template <class T>
    HostTensor<T> get(const std::string& name) const;

    // Adds or replaces a tensor (stored as F32, F64, I64, I32 or U8 after T), then write() saves them all.
    template <class T>
    void put(const std::string& name, const HostTensor<T>& tensor);
    // Adds or replaces a float tensor stored as F32, F16 or BF16 (rounded to nearest even; ±0, Inf, NaN
    // kept).
    void put(const std::string& name, const HostTensor<float>& tensor, io::FloatStorage storage);

    // The header's "__metadata__": free-form strings (PyTorch's safetensors writes {"format": "pt"}).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    std::map<std::string, std::string>& metadata() { return metadata_; }

    // Writes atomically: to path + ".tmp-<pid>" in the same folder, flushed to disk, then renamed over path,
    // so that a failure (thrown as Error) leaves any earlier file at path as it was.
    void write(const std::string& path) const;

    const std::string& path() const { return path_; }

  private:
    void put_stored(const std::string& name, StoredTensor stored);

    std::string path_;
    std::map<std::string, StoredTensor> tensors_;
    std::vector<std::string> order_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace cudacnn
