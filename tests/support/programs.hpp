// Running the command-line programs from tests (exit code and output), decoding the PNGs they write with
// libpng independently of cudacnn's own code, reading cudacnn-eval's --logits CSV, and writing CIFAR-10
// binary files.
#pragma once

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <png.h>

namespace cudacnn::test {

struct Outcome {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

// `binary args`, with stdout and stderr captured in folder/log.txt.
inline Outcome run_program(const std::string& binary, const std::string& args, const std::string& folder) {
    const std::string log = folder + "/log.txt";
    const std::string command = binary + " " + args + " > " + log + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream file(log);
    std::stringstream text;
    text << file.rdbuf();
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

struct DecodedPng {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> rgb;  // interleaved; empty when the file is not a readable PNG

    std::set<uint32_t> colours() const {
        std::set<uint32_t> found;
        for (std::size_t k = 0; k + 2 < rgb.size(); k += 3) found.insert(rgb[k] << 16 | rgb[k + 1] << 8 | rgb[k + 2]);
        return found;
    }
};

inline DecodedPng decode_png(const std::string& path) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    DecodedPng out;
    if (png_image_begin_read_from_file(&image, path.c_str()) == 0) return out;
    image.format = PNG_FORMAT_RGB;
    std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
    if (png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr) == 0) return out;
    out.width = image.width;
    out.height = image.height;
    out.rgb = std::move(rgb);
    return out;
}

// One row of cudacnn-eval's --logits file: index,label,logit_0,...
struct CsvRow {
    int64_t index = -1, label = -1;
    std::vector<double> logits;
};

inline std::vector<CsvRow> read_logits_csv(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);  // header
    std::vector<CsvRow> rows;
    while (std::getline(file, line)) {
        std::stringstream cells(line);
        std::string cell;
        CsvRow row;
        std::getline(cells, cell, ',');
        row.index = std::stoll(cell);
        std::getline(cells, cell, ',');
        row.label = std::stoll(cell);
        while (std::getline(cells, cell, ',')) row.logits.push_back(std::stod(cell));
        rows.push_back(row);
    }
    return rows;
}

// CIFAR-10's binary layout: per record a label byte and 3072 pixel bytes (R, G, B planes).
inline void write_cifar10_file(const std::string& path, const std::vector<uint8_t>& images,
                               const std::vector<int64_t>& labels) {
    std::ofstream file(path, std::ios::binary);
    for (std::size_t n = 0; n < labels.size(); ++n) {
        file.put(static_cast<char>(labels[n]));
        file.write(reinterpret_cast<const char*>(images.data() + n * 3072), 3072);
    }
}

// A CIFAR-10 folder whose test_batch.bin holds these records (the training files hold one record each).
inline void write_cifar10_folder(const std::string& folder, const std::vector<uint8_t>& images,
                                 const std::vector<int64_t>& labels) {
    write_cifar10_file(folder + "/test_batch.bin", images, labels);
    const std::vector<uint8_t> one(images.begin(), images.begin() + 3072);
    for (int b = 1; b <= 5; ++b) write_cifar10_file(folder + "/data_batch_" + std::to_string(b) + ".bin", one, {labels[0]});
}

}  // namespace cudacnn::test
