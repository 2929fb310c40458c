// The safetensors reader and writer (see include/cudacnn/safetensors.hpp).
#include "cudacnn/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cudacnn/json_parse.hpp"

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

// F16 or BF16 (2-byte patterns) through float, which holds every one of them exactly.
template <class T>
void convert_half(const StoredTensor& stored, float (*decode)(uint16_t), HostTensor<T>& out) {
    for (int64_t i = 0; i < out.numel(); ++i) {
        uint16_t bits;
        std::memcpy(&bits, stored.bytes.data() + i * sizeof bits, sizeof bits);
        out[i] = static_cast<T>(decode(bits));
    }
}

template <class T>
const char* stored_dtype() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    if constexpr (std::is_same_v<T, double>) return "F64";
    if constexpr (std::is_same_v<T, int64_t>) return "I64";
    if constexpr (std::is_same_v<T, int32_t>) return "I32";
    if constexpr (std::is_same_v<T, uint8_t>) return "U8";
    return nullptr;
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    CUDACNN_CHECK(in.good(), "{}: cannot open the file; check the path", path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A JSON array of non-negative integers (shape or data_offsets); anything else is a damaged header.
std::vector<uint64_t> unsigned_array(const nlohmann::json& entry, const char* field, const std::string& path,
                                     const std::string& name) {
    const nlohmann::json& value = entry.at(field);
    CUDACNN_CHECK(value.is_array(), "{}: tensor '{}' has {} {}, not an array of integers", path, name, field,
                  value.dump());
    std::vector<uint64_t> out;
    for (const auto& item : value) {
        CUDACNN_CHECK(item.is_number_unsigned(), "{}: tensor '{}' has {} {}: entries must be integers ≥ 0",
                      path, name, field, value.dump());
        out.push_back(item.get<uint64_t>());
    }
    return out;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& value, const std::string& path) {
    CUDACNN_CHECK(value.is_object(), "{}: __metadata__ is {}, not an object of strings", path,
                  value.type_name());
    std::map<std::string, std::string> out;
    for (const auto& [key, text] : value.items()) {
        CUDACNN_CHECK(text.is_string(),
                      "{}: __metadata__ entry '{}' is {}; safetensors metadata values are strings", path, key,
                      text.type_name());
        out[key] = text.get<std::string>();
    }
    return out;
}

// One tensor's byte range [begin, end) within the data that follows the header.
struct ByteRange {
    uint64_t begin, end;
    std::string name;
};

StoredTensor parse_entry(const std::string& name, const nlohmann::json& entry, const std::string& path,
                         uint64_t data_size, ByteRange& range) {
    CUDACNN_CHECK(entry.is_object(), "{}: tensor '{}' has a malformed header entry: {}, not an object", path,
                  name, entry.type_name());
    StoredTensor t;
    const nlohmann::json& dtype = entry.at("dtype");
    CUDACNN_CHECK(dtype.is_string(), "{}: tensor '{}' has dtype {}, not a string", path, name, dtype.dump());
    t.dtype = dtype.get<std::string>();
    const size_t size = element_size(t.dtype, path, name);

    const std::vector<uint64_t> dims = unsigned_array(entry, "shape", path, name);
    CUDACNN_CHECK(dims.size() <= static_cast<size_t>(Shape::kMaxRank),
                  "{}: tensor '{}' has rank {}; cudacnn holds up to {}", path, name, dims.size(),
                  Shape::kMaxRank);
    uint64_t expected = size;  // bytes; checked so that a damaged shape cannot overflow
    for (const uint64_t dim : dims) {
        CUDACNN_CHECK(
            dim <= INT64_MAX && !__builtin_mul_overflow(expected, dim, &expected) && expected <= INT64_MAX,
            "{}: tensor '{}' has shape {}, too large for any file", path, name, nlohmann::json(dims).dump());
    }
    t.shape = Shape(std::vector<int64_t>(dims.begin(), dims.end()));

    const std::vector<uint64_t> offsets = unsigned_array(entry, "data_offsets", path, name);
    CUDACNN_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size,
                  "{}: tensor '{}' has data offsets {} outside the {} data bytes", path, name,
                  nlohmann::json(offsets).dump(), data_size);
    CUDACNN_CHECK(offsets[1] - offsets[0] == expected,
                  "{}: tensor '{}' of shape {} and dtype {} needs {} bytes, the file gives {}", path, name,
                  t.shape, t.dtype, expected, offsets[1] - offsets[0]);
    range = ByteRange{offsets[0], offsets[1], name};
    return t;
}

// The ranges, sorted, must tile the data exactly, as the safetensors reference requires: an overlap, a gap
// or bytes after the last tensor mean a damaged or hand-edited file.
void check_tiling(std::vector<ByteRange>& ranges, uint64_t data_size, const std::string& path) {
    std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
    });
    uint64_t covered = 0;
    const ByteRange* last = nullptr;
    for (const ByteRange& r : ranges) {
        CUDACNN_CHECK(r.begin >= covered, "{}: tensors '{}' (bytes {}–{}) and '{}' (bytes {}–{}) overlap",
                      path, last->name, last->begin, last->end, r.name, r.begin, r.end);
        CUDACNN_CHECK(r.begin == covered, "{}: data bytes {}–{} before tensor '{}' belong to no tensor", path,
                      covered, r.begin, r.name);
        covered = r.end;
        last = &r;
    }
    CUDACNN_CHECK(covered == data_size, "{}: {} data bytes after the last tensor belong to no tensor", path,
                  data_size - covered);
}

// A file written beside its target, then renamed over it: readers see the old file or the new one, whole.
// Until commit() succeeds the destructor removes the temporary.
class AtomicFile {
  public:
    explicit AtomicFile(const std::string& path)
        : path_(path), temporary_(path + ".tmp-" + std::to_string(getpid())) {
        file_ = std::fopen(temporary_.c_str(), "wb");
        CUDACNN_CHECK(file_ != nullptr, "{}: cannot create {}: {}; check the folder exists and is writable",
                      path_, temporary_, std::strerror(errno));
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    ~AtomicFile() {
        if (file_ != nullptr) std::fclose(file_);
        if (!committed_) std::remove(temporary_.c_str());
    }

    void write(const void* data, size_t size) {
        if (size == 0) return;  // an empty tensor's data pointer may be null, which fwrite must not see
        CUDACNN_CHECK(std::fwrite(data, 1, size, file_) == size, "{}: writing failed: {} (disk full?); {}",
                      path_, std::strerror(errno), kUnchanged);
    }

    void commit() {
        CUDACNN_CHECK(std::fflush(file_) == 0 && fsync(fileno(file_)) == 0,
                      "{}: writing failed: {} (disk full?); {}", path_, std::strerror(errno), kUnchanged);
        const int closed = std::fclose(file_);
        file_ = nullptr;
        CUDACNN_CHECK(closed == 0, "{}: writing failed: {}; {}", path_, std::strerror(errno), kUnchanged);
        CUDACNN_CHECK(std::rename(temporary_.c_str(), path_.c_str()) == 0,
                      "{}: cannot replace it with {}: {}; {}", path_, temporary_, std::strerror(errno),
                      kUnchanged);
        committed_ = true;
        sync_folder();
    }

  private:
    static constexpr const char* kUnchanged = "any earlier file there is unchanged";

    // The rename lives in the folder's entry, which survives a power loss only once the folder is synced.
    void sync_folder() const {
        const size_t slash = path_.find_last_of('/');
        const std::string folder = slash == std::string::npos ? "."
                                   : slash == 0               ? "/"
                                                              : path_.substr(0, slash);
        const int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY);
        CUDACNN_CHECK(fd >= 0, "{}: written, but its folder cannot be opened to sync it: {}", path_,
                      std::strerror(errno));
        const bool synced = fsync(fd) == 0 || errno == EINVAL;  // EINVAL: the file system cannot sync folders
        const int error = errno;
        close(fd);
        CUDACNN_CHECK(synced,
                      "{}: written, but syncing its folder failed: {}; the file may not survive a power loss",
                      path_, std::strerror(error));
    }

    std::string path_, temporary_;
    std::FILE* file_ = nullptr;
    bool committed_ = false;
};

}  // namespace

SafetensorsFile SafetensorsFile::read(const std::string& path) {
    const std::vector<uint8_t> content = read_whole_file(path);
    CUDACNN_CHECK(content.size() >= 8, "{}: {} bytes is too short for a safetensors file", path,
                  content.size());
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = header_size << 8 | content[i];
    CUDACNN_CHECK(
        header_size <= content.size() - 8,
        "{}: header of {} bytes runs past the end of the file ({} bytes); the file is truncated or not "
        "safetensors",
        path, header_size, content.size());
    nlohmann::json header;
    try {
        header = parse_json_limited(path, content.begin() + 8,
                                    content.begin() + 8 + static_cast<int64_t>(header_size));
    } catch (const nlohmann::json::exception& e) {
        CUDACNN_FAIL("{}: the header is not valid JSON: {}", path, e.what());
    }
    CUDACNN_CHECK(header.is_object(), "{}: the header is not a JSON object", path);
    const size_t data_start = 8 + header_size, data_size = content.size() - data_start;

    SafetensorsFile file;
    file.path_ = path;
    std::vector<ByteRange> ranges;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            file.metadata_ = parse_metadata(entry, path);
            continue;
        }
        try {
            ranges.emplace_back();
            file.tensors_[name] = parse_entry(name, entry, path, data_size, ranges.back());
        } catch (const nlohmann::json::exception& e) {
            CUDACNN_FAIL("{}: tensor '{}' has a malformed header entry: {}", path, name, e.what());
        }
    }
    check_tiling(ranges, data_size, path);
    for (const ByteRange& r : ranges) {
        const auto begin = content.begin() + static_cast<int64_t>(data_start + r.begin);
        file.tensors_[r.name].bytes.assign(begin, begin + static_cast<int64_t>(r.end - r.begin));
        file.order_.push_back(r.name);
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
    if (stored.dtype == "F32")
        convert<float>(stored, out);
    else if (stored.dtype == "F64")
        convert<double>(stored, out);
    else if (stored.dtype == "F16")
        convert_half(stored, io::f16_bits_to_float, out);
    else if (stored.dtype == "BF16")
        convert_half(stored, io::bf16_bits_to_float, out);
    else if (stored.dtype == "I64")
        convert<int64_t>(stored, out);
    else if (stored.dtype == "I32")
        convert<int32_t>(stored, out);
    else if (stored.dtype == "U8")
        convert<uint8_t>(stored, out);
    else
        CUDACNN_FAIL("{}: tensor '{}' is {}; only F64, F32, F16, BF16, I64, I32 and U8 convert", path_, name,
                     stored.dtype);
    return out;
}

void SafetensorsFile::put_stored(const std::string& name, StoredTensor stored) {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) order_.push_back(name);
    tensors_[name] = std::move(stored);
}

template <class T>
void SafetensorsFile::put(const std::string& name, const HostTensor<T>& tensor) {
    StoredTensor stored;
    stored.dtype = stored_dtype<T>();
    stored.shape = tensor.shape();
    stored.bytes.resize(static_cast<size_t>(tensor.numel()) * sizeof(T));
    // An empty tensor has no data pointer, and memcpy must not see a null one even for 0 bytes.
    if (!stored.bytes.empty()) std::memcpy(stored.bytes.data(), tensor.data(), stored.bytes.size());
    put_stored(name, std::move(stored));
}

void SafetensorsFile::put(const std::string& name, const HostTensor<float>& tensor,
                          io::FloatStorage storage) {
    if (storage == io::FloatStorage::f32) return put(name, tensor);
    uint16_t (*encode)(float) =
        storage == io::FloatStorage::f16 ? io::float_to_f16_bits : io::float_to_bf16_bits;
    StoredTensor stored;
    stored.dtype = io::safetensors_dtype(storage);
    stored.shape = tensor.shape();
    stored.bytes.resize(static_cast<size_t>(tensor.numel()) * sizeof(uint16_t));
    for (int64_t i = 0; i < tensor.numel(); ++i) {
        const uint16_t bits = encode(tensor[i]);
        std::memcpy(stored.bytes.data() + i * sizeof bits, &bits, sizeof bits);
    }
    put_stored(name, std::move(stored));
}

void SafetensorsFile::write(const std::string& path) const {
    // Metadata first and tensors in put() order, as readers (ours sorts by offset) keep that order.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const std::string& name : order_) {
        const StoredTensor& t = tensors_.at(name);
        header[name] = {{"dtype", t.dtype},
                        {"shape", t.shape.dims()},
                        {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes with spaces
    uint8_t size[8];
    for (int i = 0; i < 8; ++i) size[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i) & 0xff);

    AtomicFile out(path);
    out.write(size, sizeof size);
    out.write(text.data(), text.size());
    for (const std::string& name : order_)
        out.write(tensors_.at(name).bytes.data(), tensors_.at(name).bytes.size());
    out.commit();
}

#define CUDACNN_SAFETENSORS_TYPES(T)                                          \
    template HostTensor<T> SafetensorsFile::get<T>(const std::string&) const; \
    template void SafetensorsFile::put<T>(const std::string&, const HostTensor<T>&);
CUDACNN_SAFETENSORS_TYPES(float)
CUDACNN_SAFETENSORS_TYPES(double)
CUDACNN_SAFETENSORS_TYPES(int64_t)
CUDACNN_SAFETENSORS_TYPES(int32_t)
CUDACNN_SAFETENSORS_TYPES(uint8_t)
#undef CUDACNN_SAFETENSORS_TYPES

}  // namespace cudacnn
