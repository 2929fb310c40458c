// main() of the test programs that need no device.
namespace cudacnn::test {
int run_catch_session(int argc, char** argv);  // tests/catch_impl.cpp
}

int main(int argc, char** argv) { return cudacnn::test::run_catch_session(argc, argv); }
