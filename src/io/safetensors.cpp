// The safetensors reader and writer (see include/cudacnn/safetensors.hpp).
#include "cudacnn/safetensors.hpp"

#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

namespace cudacnn {

namespace {

size_t element_size(const std::string& dtype, const std::string& path, const std::string& name) {
    if (dtype == "F64" || dtype == "I64") return 8;
    if (dtype == "F32" || dtype == "I32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
    if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
    CUDACNN_FAIL("{}: tensor '{}' has dtype '{}', which cudacnn does not read", path, name, dtype);
}

template <class Stored, class T>
void convert(const StoredTensor& stored, HostTensor<T>& out) {
    for (int64_t i = 0; i < out.numel(); ++i) {
        Stored value;
        std::memcpy(&value, stored.bytes.data() + i * sizeof(Stored), sizeof(Stored));
        out[i] = static_cast<T>(value);
    }
}

template <class T>
const char* stored_dtype() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    if constexpr (std::is_same_v<T, double>) return "F64";
    if constexpr (std::is_same_v<T, int64_t>) return "I64";
    if constexpr (std::is_same_v<T, int32_t>) return "I32";
    return nullptr;
}

}  // namespace

SafetensorsFile SafetensorsFile::read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    CUDACNN_CHECK(in.good(), "{}: cannot open the file; check the path", path);
    const std::vector<uint8_t> content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CUDACNN_CHECK(content.size() >= 8, "{}: {} bytes is too short for a safetensors file", path, content.size());
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = header_size << 8 | content[i];
    CUDACNN_CHECK(header_size <= content.size() - 8, "{}: header of {} bytes runs past the end of the file ({} bytes)",
                  path, header_size, content.size());
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(content.begin() + 8, content.begin() + 8 + static_cast<int64_t>(header_size));
    } catch (const nlohmann::json::exception& e) {
        CUDACNN_FAIL("{}: the header is not valid JSON: {}", path, e.what());
    }
    CUDACNN_CHECK(header.is_object(), "{}: the header is not a JSON object", path);
    const size_t data_start = 8 + header_size, data_size = content.size() - data_start;

    SafetensorsFile file;
    file.path_ = path;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") continue;
        try {
            StoredTensor t;
            t.dtype = entry.at("dtype").get<std::string>();
            t.shape = Shape(entry.at("shape").get<std::vector<int64_t>>());
            const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
            CUDACNN_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size,
                          "{}: tensor '{}' has data offsets outside the {} data bytes", path, name, data_size);
            const size_t expected = static_cast<size_t>(t.shape.numel()) * element_size(t.dtype, path, name);
            CUDACNN_CHECK(offsets[1] - offsets[0] == expected,
                          "{}: tensor '{}' of shape {} and dtype {} needs {} bytes, the file gives {}", path, name,
                          t.shape, t.dtype, expected, offsets[1] - offsets[0]);
            const auto begin = content.begin() + static_cast<int64_t>(data_start + offsets[0]);
            t.bytes.assign(begin, begin + static_cast<int64_t>(expected));
            file.tensors_[name] = std::move(t);
        } catch (const nlohmann::json::exception& e) {
            CUDACNN_FAIL("{}: tensor '{}' has a malformed header entry: {}", path, name, e.what());
        }
    }
    return file;
}

std::vector<std::string> SafetensorsFile::names() const {
    std::vector<std::string> out;
    for (const auto& entry : tensors_) out.push_back(entry.first);
    return out;
}

const StoredTensor& SafetensorsFile::tensor(const std::string& name) const {
    const auto it = tensors_.find(name);
    CUDACNN_CHECK(it != tensors_.end(), "{}: no tensor named '{}'", path_, name);
    return it->second;
}

template <class T>
HostTensor<T> SafetensorsFile::get(const std::string& name) const {
    const StoredTensor& stored = tensor(name);
    HostTensor<T> out(stored.shape);
    if (stored.dtype == "F32") convert<float>(stored, out);
    else if (stored.dtype == "F64") convert<double>(stored, out);
    else if (stored.dtype == "I64") convert<int64_t>(stored, out);
    else if (stored.dtype == "I32") convert<int32_t>(stored, out);
    else CUDACNN_FAIL("{}: tensor '{}' is {}; only F32, F64, I64 and I32 convert", path_, name, stored.dtype);
    return out;
}

template <class T>
void SafetensorsFile::put(const std::string& name, const HostTensor<T>& tensor) {
    StoredTensor stored;
    stored.dtype = stored_dtype<T>();
    stored.shape = tensor.shape();
    stored.bytes.resize(static_cast<size_t>(tensor.numel()) * sizeof(T));
    std::memcpy(stored.bytes.data(), tensor.data(), stored.bytes.size());
    tensors_[name] = std::move(stored);
}

void SafetensorsFile::write(const std::string& path) const {
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors_) {
        header[name] = {{"dtype", t.dtype}, {"shape", t.shape.dims()}, {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes with spaces
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    CUDACNN_CHECK(out.good(), "{}: cannot create the file; check the folder exists and is writable", path);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(uint64_t{text.size()} >> (8 * i) & 0xff));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& entry : tensors_) {
        out.write(reinterpret_cast<const char*>(entry.second.bytes.data()),
                  static_cast<std::streamsize>(entry.second.bytes.size()));
    }
    CUDACNN_CHECK(out.good(), "{}: writing failed (disk full?)", path);
}

#define CUDACNN_SAFETENSORS_TYPES(T)                                              \
    template HostTensor<T> SafetensorsFile::get<T>(const std::string&) const;     \
    template void SafetensorsFile::put<T>(const std::string&, const HostTensor<T>&);
CUDACNN_SAFETENSORS_TYPES(float)
CUDACNN_SAFETENSORS_TYPES(double)
CUDACNN_SAFETENSORS_TYPES(int64_t)
CUDACNN_SAFETENSORS_TYPES(int32_t)
#undef CUDACNN_SAFETENSORS_TYPES

}  // namespace cudacnn
