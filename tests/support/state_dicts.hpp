// Two state dicts (a model's or an optimizer's, e.g. from checkpoints) compared bit for bit, entry by entry,
// for the tests that resume interrupted runs.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "cudacnn/io/state_dict.hpp"

namespace cudacnn::test {

inline void require_same_state(const io::StateDict& a, const io::StateDict& b) {
    REQUIRE(a.names() == b.names());
    for (const std::string& name : a.names()) {
        INFO(name);
        if (a.dtype(name) == DType::i64) {
            REQUIRE(a.i64(name).values() == b.i64(name).values());
        } else {
            REQUIRE(a.f32(name).values() == b.f32(name).values());  // bit for bit
        }
    }
}

}  // namespace cudacnn::test
