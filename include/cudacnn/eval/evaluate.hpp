// cudacnn-eval's work as a library: test accuracy, per-class accuracy and the confusion matrix of a dataset
// (optionally under test-time augmentation and an FGSM attack), top-k predictions for image files, and the
// command line that drives them.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::eval {

struct DatasetResult {
    HostTensor<float> logits;                          // (N, classes); with TTA the averaged logits
    std::vector<int64_t> labels;                       // (N)
    std::vector<std::vector<int64_t>> confusion;       // [true class][predicted class]
    int64_t correct = 0;
    double loss = 0.0;                                 // mean cross-entropy of `logits`
    std::optional<double> fgsm_eps;                    // with an FGSM attack:
    std::vector<std::vector<int64_t>> fgsm_confusion;  //   its confusion matrix
    int64_t fgsm_correct = 0;                          //   and correct count

    int64_t size() const { return static_cast<int64_t>(labels.size()); }
    double accuracy_percent() const { return size() > 0 ? 100.0 * correct / size() : 0.0; }
};

// Every record of `dataset` through the model (the test transform: ToTensor + the seed's Normalize); `tta`
// averages each image's logits over its views (Session::logits); `fgsm_eps` also attacks every image (FGSM
// with its true label, eps on the [0, 1] pixel scale) and classifies the result the same way.
DatasetResult evaluate_dataset(Session& session, const data::Dataset& dataset, const Tta& tta,
                               std::optional<double> fgsm_eps);

struct Prediction {
    std::string path;
    int64_t height = 0, width = 0;                   // of the file
    std::vector<std::pair<int64_t, double>> top;     // (class, softmax probability), most probable first
};
// Each file read (PNG or JPEG), made the model's input by session.preprocessing() (torchvision's Resize +
// CenterCrop for the ImageNet models; else data::fit_image: centre crop to the input's aspect ratio, then PIL's
// bilinear resize) and classified (with `tta`, from the mean logits of its views); the top_k classes
// by probability (ties: the lower class).
std::vector<Prediction> predict_images(Session& session, const std::vector<std::string>& paths, int64_t top_k,
                                       const Tta& tta);

// The per-class accuracies (correct / images of the class, as a table) and the whole result as text.
std::string format_result(const DatasetResult& result, const std::vector<std::string>& class_names);
// The logits as CSV: a header "index,label,<class names>", then one row per image, floats as %.9g.
void write_logits_csv(const DatasetResult& result, const std::vector<std::string>& class_names, const std::string& path);

// ---- the command line ----

struct EvalOptions {
    ModelSource source;                 // --checkpoint | --weights (+ --model)
    std::string dataset;                // --dataset cifar10|cifar100|synthetic|folder; empty: the checkpoint's
    std::string data_dir;               // --data DIR
    std::optional<int64_t> limit;       // --limit N: the first N test images
    train::DeviceChoice device = train::DeviceChoice::auto_;
    int threads = 0;                    // --threads: the fast CPU path's, 0 = one per core
    int64_t batch_size = 128;           // -b / --batch-size
    Tta tta;                            // --tta (views: all unless --tta-views), --tta-padding
    std::optional<double> fgsm;         // --fgsm EPS
    std::string logits_path;            // --logits FILE.csv
    std::string confusion_path;         // --confusion FILE.png
    std::vector<std::string> predict;   // --predict IMAGE...
    int64_t top_k = 5;                  // --top-k K
};

struct ParsedEvalArgs {
    EvalOptions options;
    bool help = false;
};
// Throws train::UsageError naming the flag and value.
ParsedEvalArgs parse_eval_args(const std::vector<std::string>& args);
std::string eval_usage();

// The whole command (args without argv[0]): 0, 1 for an Error (message on `err`), 2 for a usage error.
int eval_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace cudacnn::eval
