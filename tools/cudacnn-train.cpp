// cudacnn-train: trains an image classifier (the tutorial's CifarCNN by default) with the seed's recipe and
// log line; `cudacnn-train --help` lists the flags. All the work is in the library (src/train/trainer.cpp).
#include <iostream>
#include <string>
#include <vector>

#include "cudacnn/train/trainer.hpp"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return cudacnn::train::train_main(args, std::cout, std::cerr);
}
