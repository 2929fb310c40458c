// eval::class_names: the names a checkpoint's run implies when no dataset is read.
#include <catch2/catch.hpp>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/options.hpp"

using namespace cudacnn;

TEST_CASE("class names of a checkpoint's run: CIFAR-100's coarse or fine names by its --cifar100-labels", "[eval]") {
    eval::LoadedModel model;
    model.spec = graph::builtin_model("small_cnn");
    model.spec.num_classes = 20;
    model.run = train::TrainOptions{};
    model.run->dataset = "cifar100";
    model.run->cifar100_labels = data::Cifar100Labels::coarse;
    CHECK(eval::class_names(model, nullptr) == data::known_class_names("cifar100_coarse"));
    model.run->cifar100_labels.reset();  // fine: 100 names, which a 20-way model does not fit
    CHECK(eval::class_names(model, nullptr).front() == "0");
    model.spec.num_classes = 100;
    CHECK(eval::class_names(model, nullptr) == data::known_class_names("cifar100"));
}
