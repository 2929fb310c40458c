// The bench's result schema: JSON and CSV forms of records and reports, and the printed table's lines.
#include "cudacnn/bench/record.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"

namespace cudacnn::bench {
namespace {

using nlohmann::json;

constexpr const char* kStatusNames[] = {"ok", "wrong", "unsupported", "failed", "skipped"};

// One field of Record: its name and how it moves to and from JSON. The table drives record_fields(), the
// JSON keys and the CSV columns, so the three cannot drift apart.
struct Field {
    const char* name;
    json (*get)(const Record&);
    void (*set)(Record&, const json&);
};

json optional_json(const std::optional<double>& value) {
    return value && std::isfinite(*value) ? json(*value) : json(nullptr);
}

std::optional<double> optional_from(const json& value, const char* name) {
    if (value.is_null()) return std::nullopt;
    CUDACNN_CHECK(value.is_number(), "bench record: field '{}' holds {}, not a number or null", name, value.dump());
    return value.get<double>();
}

std::string string_from(const json& value, const char* name) {
    CUDACNN_CHECK(value.is_string(), "bench record: field '{}' holds {}, not a string", name, value.dump());
    return value.get<std::string>();
}

#define CUDACNN_TEXT_FIELD(member)                                                                 \
    Field {                                                                                        \
        #member, [](const Record& r) { return json(r.member); },                                   \
            [](Record& r, const json& v) { r.member = string_from(v, #member); }                    \
    }
#define CUDACNN_NUMBER_FIELD(member)                                                               \
    Field {                                                                                        \
        #member, [](const Record& r) { return optional_json(r.member); },                          \
            [](Record& r, const json& v) { r.member = optional_from(v, #member); }                  \
    }

const std::vector<Field>& fields() {
    static const std::vector<Field> table = {
        CUDACNN_TEXT_FIELD(op),
        CUDACNN_TEXT_FIELD(shape),
        CUDACNN_TEXT_FIELD(direction),
        CUDACNN_TEXT_FIELD(algorithm),
        CUDACNN_TEXT_FIELD(device),
        Field{"status", [](const Record& r) { return json(status_name(r.status)); },
              [](Record& r, const json& v) {
                  const std::string name = string_from(v, "status");
                  const auto status = status_from_name(name);
                  CUDACNN_CHECK(status.has_value(),
                                "bench record: status '{}' is not one of ok, wrong, unsupported, failed, skipped",
                                name);
                  r.status = *status;
              }},
        CUDACNN_TEXT_FIELD(note),
        Field{"repeats", [](const Record& r) { return json(r.repeats); },
              [](Record& r, const json& v) {
                  CUDACNN_CHECK(v.is_number_integer(), "bench record: field 'repeats' holds {}, not a whole number",
                                v.dump());
                  r.repeats = v.get<int64_t>();
              }},
        CUDACNN_NUMBER_FIELD(median_us),
        CUDACNN_NUMBER_FIELD(min_us),
        CUDACNN_NUMBER_FIELD(max_us),
        CUDACNN_NUMBER_FIELD(spread_percent),
        CUDACNN_NUMBER_FIELD(flops),
        CUDACNN_NUMBER_FIELD(bytes),
        CUDACNN_NUMBER_FIELD(gflops),
        CUDACNN_NUMBER_FIELD(gbps),
        CUDACNN_NUMBER_FIELD(peak_percent),
        CUDACNN_NUMBER_FIELD(ratio_to_vendor),
        CUDACNN_NUMBER_FIELD(max_error),
        CUDACNN_NUMBER_FIELD(tolerance),
        CUDACNN_NUMBER_FIELD(images_per_s),
        CUDACNN_NUMBER_FIELD(epoch_s),
    };
    return table;
}

#undef CUDACNN_TEXT_FIELD
#undef CUDACNN_NUMBER_FIELD

std::string csv_cell(const json& value) {
    if (value.is_null()) return "";
    if (value.is_number_float()) return fmt::format("{}", value.get<double>());  // shortest round trip
    if (!value.is_string()) return value.dump();
    const std::string text = value.get<std::string>();
    if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
    std::string quoted = "\"";
    for (const char c : text) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

void write_whole_file(const std::string& path, const std::string& text) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        CUDACNN_CHECK(out.good(), "bench: cannot write '{}' (does its folder exist and is it writable?)", path);
        out << text;
        out.flush();
        CUDACNN_CHECK(out.good(), "bench: writing '{}' failed (disk full?)", path);
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        std::remove(temporary.c_str());
        CUDACNN_FAIL("bench: cannot move the finished '{}' into place (is it a folder?)", path);
    }
}

// "1.23e+04"-style numbers are hard to scan in a column: fixed digits, fewer for large values.
std::string number_text(const std::optional<double>& value, int width) {
    if (!value || !std::isfinite(*value)) return fmt::format("{:>{}}", "-", width);
    const double v = *value;
    const int digits = std::fabs(v) >= 100 ? 0 : std::fabs(v) >= 10 ? 1 : 2;
    return fmt::format("{:>{}.{}f}", v, width, digits);
}

}  // namespace

const char* status_name(Status status) { return kStatusNames[static_cast<int>(status)]; }

std::optional<Status> status_from_name(const std::string& name) {
    for (int i = 0; i < 5; ++i)
        if (name == kStatusNames[i]) return static_cast<Status>(i);
    return std::nullopt;
}

const std::vector<std::string>& record_fields() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const Field& f : fields()) out.emplace_back(f.name);
        return out;
    }();
    return names;
}

nlohmann::json to_json(const Record& record) {
    json out = json::object();
    for (const Field& f : fields()) out[f.name] = f.get(record);
    return out;
}

Record record_from_json(const nlohmann::json& value) {
    CUDACNN_CHECK(value.is_object(), "bench record: {} is not an object", value.dump());
    Record record;
    for (const Field& f : fields()) {
        const auto found = value.find(f.name);
        if (found == value.end()) {
            // Numbers may be left out (the PyTorch script writes only what it measured); text may not.
            CUDACNN_CHECK(f.get(record).is_null() || std::string(f.name) == "note" ||
                              std::string(f.name) == "repeats",
                          "bench record: field '{}' is missing in {}", f.name, value.dump());
            continue;
        }
        f.set(record, *found);
    }
    return record;
}

nlohmann::json to_json(const Report& report) {
    json records = json::array();
    for (const Record& r : report.records) records.push_back(to_json(r));
    return json{{"schema", kSchema},        {"tool", report.tool},
                {"device", report.device},  {"model", report.model},
                {"batch_size", report.batch_size}, {"warmup", report.warmup},
                {"repeats", report.repeats}, {"records", records}};
}

Report report_from_json(const nlohmann::json& value) {
    CUDACNN_CHECK(value.is_object() && value.value("schema", "") == kSchema,
                  "bench report: not a '{}' results file (its \"schema\" is {})", kSchema,
                  value.is_object() && value.contains("schema") ? value["schema"].dump() : "missing");
    Report report;
    report.tool = value.value("tool", "");
    report.device = value.value("device", "");
    report.model = value.value("model", "");
    report.batch_size = value.value("batch_size", int64_t{0});
    report.warmup = value.value("warmup", int64_t{0});
    report.repeats = value.value("repeats", int64_t{0});
    CUDACNN_CHECK(value.contains("records") && value["records"].is_array(),
                  "bench report: \"records\" is missing or not a list");
    for (const json& r : value["records"]) report.records.push_back(record_from_json(r));
    return report;
}

std::string csv_header() {
    std::string line;
    for (const std::string& name : record_fields()) line += (line.empty() ? "" : ",") + name;
    return line + "\n";
}

std::string csv_row(const Record& record) {
    std::string line;
    bool first = true;
    for (const Field& f : fields()) {
        if (!first) line += ',';
        first = false;
        line += csv_cell(f.get(record));
    }
    return line + "\n";
}

void write_json(const std::string& path, const Report& report) {
    write_whole_file(path, to_json(report).dump(2) + "\n");
}

void write_csv(const std::string& path, const Report& report) {
    std::string text = csv_header();
    for (const Record& r : report.records) text += csv_row(r);
    write_whole_file(path, text);
}

std::string table_header() {
    return fmt::format("{:<14} {:<44} {:<15} {:<11} {:>11} {:>7} {:>10} {:>6} {:>7}  {}\n", "op", "shape",
                       "direction", "algorithm", "median µs", "±%", "GFLOP/s", "%peak", "×vendor", "check / note");
}

std::string table_row(const Record& r) {
    // GFLOP/s for compute-bound rows, GB/s (marked) for memory-bound ones, images/s or seconds for the step.
    std::string rate = number_text(std::nullopt, 10);
    if (r.gflops) rate = number_text(r.gflops, 10);
    else if (r.gbps) rate = number_text(r.gbps, 7) + "GB/s";
    else if (r.images_per_s) rate = number_text(r.images_per_s, 6) + "im/s";
    else if (r.epoch_s) rate = number_text(r.epoch_s, 8) + " s";
    std::string check;
    if (r.status != Status::ok) {
        check = fmt::format("{}: {}", status_name(r.status), r.note);
    } else {
        if (r.max_error) check = fmt::format("err {:.1e} ≤ {:.1e}", *r.max_error, r.tolerance.value_or(0.0));
        if (!r.note.empty()) check += (check.empty() ? "" : "; ") + r.note;
    }
    return fmt::format("{:<14} {:<44} {:<15} {:<11} {} {} {} {} {}  {}\n", r.op, r.shape, r.direction,
                       r.algorithm, number_text(r.median_us, 11), number_text(r.spread_percent, 7), rate,
                       number_text(r.peak_percent, 6), number_text(r.ratio_to_vendor, 7), check);
}

}  // namespace cudacnn::bench
