// Free space in the output folder against the checkpoints a run will write (output_space.hpp).
#include "src/train/output_space.hpp"

#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn::train {

namespace {

std::string megabytes(std::uintmax_t bytes) {
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

}  // namespace

std::string output_space_verdict(std::uintmax_t available, std::uintmax_t checkpoint_bytes, int64_t checkpoints,
                                 const std::string& folder, const std::string& flag) {
    if (checkpoints <= 0 || checkpoint_bytes == 0) return "";
    // The temporary copy and the final file exist together only for a moment, but both need the room.
    const std::uintmax_t first = 2 * checkpoint_bytes;
    CUDACNN_CHECK(available >= first,
                  "{} {}: {} free, but one checkpoint needs about {} (written beside its final name first): free "
                  "some space or choose another {}",
                  flag, folder, megabytes(available), megabytes(first), flag);
    const std::uintmax_t all = (static_cast<std::uintmax_t>(checkpoints) + 1) * checkpoint_bytes;
    if (available >= all) return "";
    return fmt::format("warning: {} {}: {} free, but this run writes {} checkpoints of about {} ({} in all); "
                       "it stops with an error when the disk fills, keeping the checkpoints already written",
                       flag, folder, megabytes(available), checkpoints, megabytes(checkpoint_bytes),
                       megabytes(all));
}

std::string check_output_space(const std::string& folder, std::uintmax_t checkpoint_bytes, int64_t checkpoints,
                               const std::string& flag) {
    std::error_code error;
    const std::filesystem::space_info space = std::filesystem::space(folder.empty() ? "." : folder, error);
    if (error) return "";  // the writability probe before this already names unusable folders
    return output_space_verdict(space.available, checkpoint_bytes, checkpoints, folder, flag);
}

}  // namespace cudacnn::train
