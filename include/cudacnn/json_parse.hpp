// JSON from files (model specs, augmentation specs, safetensors headers, checkpoint metadata) parsed with a
// nesting limit: nlohmann::json copies, compares and dumps values recursively, so a damaged or hostile file of
// 100 000 nested brackets, accepted by its iterative parser, would overflow the stack later (found by fuzzing).
#pragma once

#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"

namespace cudacnn {

// Deeper than any file cudacnn reads or writes needs (a model spec is 4 levels deep).
constexpr int kMaxJsonDepth = 64;

// nlohmann::json::parse(input...) that throws Error naming `what` (the file) for nesting deeper than
// kMaxJsonDepth; invalid JSON throws nlohmann::json::exception as before, for the caller to name.
template <class... Input>
nlohmann::json parse_json_limited(const std::string& what, Input&&... input) {
    return nlohmann::json::parse(std::forward<Input>(input)...,
                                 [&what](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
                                     CUDACNN_CHECK(depth < kMaxJsonDepth,  // depth counts from 0
                                                   "{}: JSON nested deeper than {} levels; the file is damaged",
                                                   what, kMaxJsonDepth);
                                     return true;
                                 });
}

}  // namespace cudacnn
