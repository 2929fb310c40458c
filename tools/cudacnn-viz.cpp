// cudacnn-viz: pictures of a trained model (filters, activations, feature maps, training curves, FGSM
// examples); `cudacnn-viz --help` lists the commands. The work is in src/viz/.
#include <iostream>
#include <string>
#include <vector>

#include "cudacnn/viz/commands.hpp"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return cudacnn::viz::viz_main(args, std::cout, std::cerr);
}
