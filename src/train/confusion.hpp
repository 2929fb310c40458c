// The confusion matrix of a test pass: counts[true class][predicted class], and its printed form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::train {

class Confusion {
  public:
    explicit Confusion(int64_t classes) : counts_(classes, std::vector<int64_t>(classes, 0)) {}

    void add(const HostTensor<float>& logits, const int64_t* labels);  // logits (N, classes), argmax as torch
    void reset();
    const std::vector<std::vector<int64_t>>& counts() const { return counts_; }
    // A table for up to 20 classes; beyond that the per-class accuracies of the five worst classes.
    std::string format(const std::vector<std::string>& class_names) const;

  private:
    std::vector<std::vector<int64_t>> counts_;
};

}  // namespace cudacnn::train
