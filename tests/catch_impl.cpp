// Compiles Catch2's implementation once; each test program brings its own small main (tests/*_main.cpp).
// Catch2 v2 declares Catch::Session only in the translation unit that defines CATCH_CONFIG_RUNNER, so the
// mains reach it through run_catch_session() below.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

namespace cudacnn::test {

int run_catch_session(int argc, char** argv) { return Catch::Session().run(argc, argv); }

}  // namespace cudacnn::test
