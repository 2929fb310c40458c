// The --metrics file (see metrics_log.hpp).
#include "src/train/metrics_log.hpp"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"

namespace cudacnn::train {

MetricsLog::MetricsLog(const std::string& path, MetricsFormat format, bool append) : path_(path), format_(format) {
    if (path_.empty()) return;
    const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
    std::error_code ignored;  // a failure shows as the open's error below
    if (!parent.empty()) std::filesystem::create_directories(parent, ignored);
    std::error_code no_size;
    const bool has_rows = append && std::filesystem::file_size(path_, no_size) > 0 && !no_size;
    file_.open(path_, std::ios::out | (append ? std::ios::app : std::ios::trunc));
    CUDACNN_CHECK(file_.good(), "--metrics {}: cannot open the file for writing; check the folder exists and is "
                  "writable", path_);
    if (format_ == MetricsFormat::csv && !has_rows) {
        file_ << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,epoch_seconds,lr,images_per_second\n";
    }
}

void MetricsLog::write(const EpochRow& r) {
    if (path_.empty()) return;
    if (format_ == MetricsFormat::csv) {
        file_ << fmt::format("{},{:.6f},{:.4f},{:.6f},{:.4f},{:.3f},{:.8g},{:.1f}\n", r.epoch, r.train_loss,
                             r.train_accuracy, r.test_loss, r.test_accuracy, r.seconds, r.lr, r.images_per_second);
    } else {
        const nlohmann::json row = {{"epoch", r.epoch},
                                    {"train_loss", r.train_loss},
                                    {"train_accuracy", r.train_accuracy},
                                    {"test_loss", r.test_loss},
                                    {"test_accuracy", r.test_accuracy},
                                    {"epoch_seconds", r.seconds},
                                    {"lr", r.lr},
                                    {"images_per_second", r.images_per_second}};
        file_ << row.dump() << "\n";
    }
    file_.flush();
    CUDACNN_CHECK(file_.good(), "--metrics {}: writing failed (disk full?)", path_);
}

}  // namespace cudacnn::train
