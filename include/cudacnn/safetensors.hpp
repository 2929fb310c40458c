// Reading and writing the safetensors format (an 8-byte header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data): PyTorch-made test fixtures, and weights
// that interchange with PyTorch by state_dict name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cudacnn/host_tensor.hpp"
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
    // Reads the whole file; throws Error naming the file and what is wrong with it.
    static SafetensorsFile read(const std::string& path);

    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    std::vector<std::string> names() const;
    const StoredTensor& tensor(const std::string& name) const;  // throws Error naming the file and tensor

    // A tensor as HostTensor<T>, converting F32/F64/I64/I32 values to T.
    template <class T>
    HostTensor<T> get(const std::string& name) const;

    // Adds or replaces a tensor (stored as F32, F64 or I64 after T), then write() saves them all.
    template <class T>
    void put(const std::string& name, const HostTensor<T>& tensor);
    void write(const std::string& path) const;

    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::map<std::string, StoredTensor> tensors_;
};

}  // namespace cudacnn
