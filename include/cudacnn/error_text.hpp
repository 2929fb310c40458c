// An Error's message as text to quote inside another message (a usage error, a layer's complaint).
#pragma once

#include <string>

#include "cudacnn/error.hpp"

namespace cudacnn {

// The message without its "file:line: " start, which means nothing to the person at the terminal.
std::string without_location(const Error& e);

}  // namespace cudacnn
