// Checkpoint names and the newest checkpoint of a folder (see checkpoint_files.hpp).
#include "src/train/checkpoint_files.hpp"

#include <filesystem>
#include <limits>
#include <regex>
#include <tuple>

#include <fmt/format.h>

namespace cudacnn::train {
namespace {
int64_t order_key(int64_t step) {
    return step == 0 ? std::numeric_limits<int64_t>::max() : step;
}
}  // namespace

bool CheckpointPosition::operator<(const CheckpointPosition& other) const {
    return std::make_tuple(epoch, order_key(step)) < std::make_tuple(other.epoch, order_key(other.step));
}

std::string checkpoint_file_name(const CheckpointPosition& position) {
    return position.step == 0
               ? fmt::format("checkpoint-epoch-{:03}.safetensors", position.epoch)
               : fmt::format("checkpoint-epoch-{:03}-step-{:05}.safetensors", position.epoch, position.step);
}

std::optional<CheckpointPosition> parse_checkpoint_file_name(const std::string& file_name) {
    static const std::regex pattern(R"(checkpoint-epoch-(\d{3,})(?:-step-(\d{5,}))?\.safetensors)");
    std::smatch match;
    if (!std::regex_match(file_name, match, pattern)) return std::nullopt;
    CheckpointPosition position;
    position.epoch = std::stoll(match[1].str());
    position.step = match[2].matched ? std::stoll(match[2].str()) : 0;
    if (match[2].matched && position.step == 0) return std::nullopt;  // step 0 is written as the epoch's end
    return position;
}

std::string newest_checkpoint(const std::string& folder) {
    std::error_code error;
    std::string newest;
    CheckpointPosition newest_position;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
        const auto position = parse_checkpoint_file_name(entry.path().filename().string());
        if (!position || !entry.is_regular_file(error)) continue;
        if (newest.empty() || newest_position < *position) {
            newest = entry.path().string();
            newest_position = *position;
        }
    }
    return newest;
}

}  // namespace cudacnn::train
