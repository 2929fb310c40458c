// cudacnn-eval: test accuracy, per-class accuracy, the confusion matrix (text and PNG), logits, FGSM accuracy
// and top-k predictions for image files; `cudacnn-eval --help` lists the flags. The work is in src/eval/.
#include <iostream>
#include <string>
#include <vector>

#include "cudacnn/eval/evaluate.hpp"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return cudacnn::eval::eval_main(args, std::cout, std::cerr);
}
