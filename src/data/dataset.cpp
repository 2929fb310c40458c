// Dataset's accessors, prefix and consistency check (include/cudacnn/data/dataset.hpp).
#include "cudacnn/data/dataset.hpp"

#include <algorithm>

#include "cudacnn/error.hpp"

namespace cudacnn::data {

int64_t Dataset::size() const {
    return static_cast<int64_t>(labels.size());
}

int64_t Dataset::image_bytes() const {
    return channels * height * width;
}

const uint8_t* Dataset::image(int64_t i) const {
    CUDACNN_CHECK(i >= 0 && i < size(), "{}: record {} is outside [0, {})", name, i, size());
    return images.data() + i * image_bytes();
}

Dataset Dataset::first(int64_t n) const {
    CUDACNN_CHECK(n >= 0, "{}: cannot take the first {} records; the count must be >= 0", name, n);
    const int64_t kept = std::min(n, size());
    Dataset out;
    out.name = name;
    out.channels = channels;
    out.height = height;
    out.width = width;
    out.num_classes = num_classes;
    out.class_names = class_names;
    out.images.assign(images.begin(), images.begin() + kept * image_bytes());
    out.labels.assign(labels.begin(), labels.begin() + kept);
    return out;
}

std::vector<int64_t> Dataset::class_counts() const {
    std::vector<int64_t> counts(static_cast<size_t>(std::max<int64_t>(num_classes, 0)), 0);
    for (const int64_t label : labels) {
        CUDACNN_CHECK(label >= 0 && label < num_classes, "{}: label {} is outside [0, {})", name, label,
                      num_classes);
        ++counts[static_cast<size_t>(label)];
    }
    return counts;
}

void Dataset::validate() const {
    CUDACNN_CHECK(channels > 0 && height > 0 && width > 0, "{}: image size {}×{}×{} must be positive", name,
                  channels, height, width);
    CUDACNN_CHECK(num_classes > 0 && static_cast<int64_t>(class_names.size()) == num_classes,
                  "{}: {} class names for {} classes", name, class_names.size(), num_classes);
    CUDACNN_CHECK(static_cast<int64_t>(images.size()) == size() * image_bytes(),
                  "{}: {} image bytes for {} labels of {} bytes each (expected {})", name, images.size(),
                  size(), image_bytes(), size() * image_bytes());
    for (int64_t i = 0; i < size(); ++i) {
        CUDACNN_CHECK(labels[i] >= 0 && labels[i] < num_classes,
                      "{}: record {} has label {}, outside [0, {})", name, i, labels[i], num_classes);
    }
}

}  // namespace cudacnn::data
