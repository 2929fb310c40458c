// The names of cudacnn-train's checkpoints in an output folder and which one is the newest.
//   checkpoint-epoch-003.safetensors             after epoch 3
//   checkpoint-epoch-003-step-00120.safetensors  within epoch 3, after its first 120 batches (an interrupted
//   run)
// A writer's temporary (NAME.tmp-<pid>, left by a process killed while writing) is not a checkpoint: it is
// ignored here and never loaded; a later write of the same checkpoint uses its own temporary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cudacnn::train {

// Where in a run a checkpoint was taken: within `epoch` after `step` batches, or at its end (step 0).
struct CheckpointPosition {
    int64_t epoch = 0;
    int64_t step = 0;

    // Training order: an epoch's end comes after all of its steps.
    bool operator<(const CheckpointPosition& other) const;
};

std::string checkpoint_file_name(const CheckpointPosition& position);
std::optional<CheckpointPosition> parse_checkpoint_file_name(const std::string& file_name);

// The path of the checkpoint in `folder` furthest into training, or "" when there is none (or no folder).
std::string newest_checkpoint(const std::string& folder);

}  // namespace cudacnn::train
