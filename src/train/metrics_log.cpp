// The --metrics file (see metrics_log.hpp).
#include "src/train/metrics_log.hpp"

#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"
#include "cudacnn/json_parse.hpp"

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

namespace {

// The columns a metrics file has; `required` ones must be present.
struct Column {
    const char* name;
    bool required;
    double EpochRow::*field;
};
const std::vector<Column>& columns() {
    static const std::vector<Column> list = {
        {"train_loss", true, &EpochRow::train_loss},       {"train_accuracy", true, &EpochRow::train_accuracy},
        {"test_loss", true, &EpochRow::test_loss},         {"test_accuracy", true, &EpochRow::test_accuracy},
        {"epoch_seconds", false, &EpochRow::seconds},      {"lr", false, &EpochRow::lr},
        {"images_per_second", false, &EpochRow::images_per_second}};
    return list;
}

double number(const std::string& text, const std::string& path, int64_t line, const std::string& column) {
    std::size_t used = 0;
    double value = 0.0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    CUDACNN_CHECK(used == text.size() && !text.empty(), "metrics file {}, line {}: column '{}' holds '{}', not a number",
                  path, line, column, text);
    return value;
}

}  // namespace

std::vector<EpochRow> read_metrics_file(const std::string& path) {
    std::ifstream file(path);
    CUDACNN_CHECK(file.good(), "metrics file {}: cannot open it (missing or unreadable)", path);
    std::map<int64_t, EpochRow> rows;  // by epoch: a resumed run's later row wins
    std::vector<std::string> header;
    std::string text;
    for (int64_t line = 1; std::getline(file, text); ++line) {
        if (text.empty() || text == "\r") continue;
        std::map<std::string, std::string> cells;
        if (text.front() == '{') {
            nlohmann::json row;
            try {
                row = parse_json_limited(fmt::format("metrics file {}, line {}", path, line), text);
            } catch (const nlohmann::json::exception& e) {
                CUDACNN_FAIL("metrics file {}, line {}: not valid JSON ({})", path, line, e.what());
            }
            for (const auto& item : row.items()) cells[item.key()] = item.value().dump();
        } else {
            std::vector<std::string> fields(1);
            for (const char c : text) {
                if (c == ',') fields.emplace_back();
                else if (c != '\r') fields.back() += c;
            }
            if (header.empty()) {
                header = fields;
                continue;
            }
            CUDACNN_CHECK(fields.size() == header.size(), "metrics file {}, line {}: {} fields, the header has {}", path,
                          line, fields.size(), header.size());
            for (std::size_t i = 0; i < fields.size(); ++i) cells[header[i]] = fields[i];
        }
        CUDACNN_CHECK(cells.count("epoch") != 0, "metrics file {}, line {}: no 'epoch' column (is it a cudacnn-train "
                      "--metrics file?)", path, line);
        EpochRow row;
        row.epoch = static_cast<int64_t>(number(cells["epoch"], path, line, "epoch"));
        for (const Column& column : columns()) {
            const auto found = cells.find(column.name);
            CUDACNN_CHECK(found != cells.end() || !column.required, "metrics file {}, line {}: no '{}' column (is it a "
                          "cudacnn-train --metrics file?)", path, line, column.name);
            if (found != cells.end()) row.*column.field = number(found->second, path, line, column.name);
        }
        rows[row.epoch] = row;
    }
    CUDACNN_CHECK(!rows.empty(), "metrics file {}: no epoch rows", path);
    std::vector<EpochRow> out;
    for (const auto& [epoch, row] : rows) out.push_back(row);
    return out;
}

}  // namespace cudacnn::train
