// Capturing the message of a cudacnn::Error, for tests that check what a bad argument is told.
#pragma once

#include <functional>
#include <string>

#include "cudacnn/error.hpp"

namespace cudacnn::test {

// The what() of the Error that f throws, or a text saying it threw none (which no matcher expects).
// Another exception type propagates, so the test fails naming it.
inline std::string error_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no cudacnn::Error thrown)";
}

}  // namespace cudacnn::test
