// Whether the output folder has room for the checkpoints a run will write, checked before training so that a
// full disk is found in the first second rather than after the first epoch.
#pragma once

#include <cstdint>
#include <string>

namespace cudacnn::train {

// The verdict for `available` bytes free, checkpoints of about `checkpoint_bytes` each, `checkpoints` of them
// (each written beside its final name first, so one more checkpoint's room is needed while writing): throws
// Error when not even the first fits; returns a warning line when not all of them fit (the user may move old
// ones away meanwhile), else "". `folder` and `flag` name the place in the messages.
std::string output_space_verdict(std::uintmax_t available, std::uintmax_t checkpoint_bytes, int64_t checkpoints,
                                 const std::string& folder, const std::string& flag);

// The same for the free space of `folder` as the file system reports it ("" when it cannot say).
std::string check_output_space(const std::string& folder, std::uintmax_t checkpoint_bytes, int64_t checkpoints,
                               const std::string& flag);

}  // namespace cudacnn::train
