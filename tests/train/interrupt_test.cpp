// Interrupted runs lose no work: SIGINT or SIGTERM finishes the step, writes a checkpoint (within an epoch:
// checkpoint-epoch-NNN-step-SSSSS) and exits 130 or 143 with the command that resumes, and the resumed run
// ends with the weights and optimizer state of an uninterrupted one, bit for bit (the CPU backends are
// deterministic).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "cudacnn/train/trainer.hpp"
#include "src/train/checkpoint_files.hpp"
#include "src/train/interrupt.hpp"
#include "support/state_dicts.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::train;
namespace fs = std::filesystem;

namespace {

// 6 batches an epoch, 3 epochs, a checkpoint after each: about a third of a second on the CPU.
std::vector<std::string> tiny_run_args(const std::string& folder) {
    return {"--model",      "small_cnn", "--dataset",    "synthetic", "--epochs",         "3",
            "--lr",         "2e-3",      "-b",           "16",        "--synthetic-size", "96,16",
            "--seed",       "5",         "--device",     "cpu",       "--threads",        "1",
            "--output-dir", folder,      "--save-every", "1",         "--log-every",      "1"};
}

TrainOptions tiny_run(const std::string& folder) {
    return parse_train_args(tiny_run_args(folder)).options;
}

// The final checkpoints of two runs hold the same weights and optimizer state.
void check_same_checkpoint(const std::string& a, const std::string& b) {
    const io::Checkpoint x = io::load_checkpoint(a), y = io::load_checkpoint(b);
    test::require_same_state(x.model, y.model);
    test::require_same_state(x.optimizer, y.optimizer);
    CHECK(x.meta.at("optimizer_steps") == y.meta.at("optimizer_steps"));
}

// The uninterrupted run's final checkpoint, made once per test program.
const std::string& reference_final_checkpoint() {
    static const test::TempDir folder;
    static const std::string path = [] {
        std::ostringstream log;
        run_training(tiny_run(folder.path()), log);
        return folder.file("checkpoint-epoch-003.safetensors");
    }();
    return path;
}

// "Training accuracy: …%" of each epoch line, which counts every batch of the epoch.
std::vector<std::string> training_accuracies(const std::string& log) {
    static const std::regex pattern(R"(Epoch: (\d+) \| Loss: [0-9.]+ \| Training accuracy: ([0-9.]+)%)");
    std::vector<std::string> out;
    for (std::sregex_iterator it(log.begin(), log.end(), pattern), end; it != end; ++it)
        out.push_back((*it)[1].str() + ":" + (*it)[2].str());
    return out;
}

std::string read_text(const std::string& path) {
    return test::read_bytes(path);
}

// cudacnn-train in a child process (fork + exec), stdout and stderr to files in `folder`.
pid_t start_train(const std::vector<std::string>& args, const std::string& folder) {
    const std::string out = folder + "/stdout.txt", err = folder + "/stderr.txt";
    std::fflush(stdout);  // else the child would write out a copy of what the test buffered
    std::fflush(stderr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::vector<char*> argv{const_cast<char*>(CUDACNN_TRAIN_BINARY)};
        for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
        argv.push_back(nullptr);
        if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(120);
        execv(CUDACNN_TRAIN_BINARY, argv.data());
        _exit(121);
    }
    return pid;
}

int wait_for(pid_t pid) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_CASE("checkpoint names order as training does; temporaries and other files are not checkpoints",
          "[train]") {
    CHECK(checkpoint_file_name({3, 0}) == "checkpoint-epoch-003.safetensors");
    CHECK(checkpoint_file_name({3, 120}) == "checkpoint-epoch-003-step-00120.safetensors");
    const auto position = parse_checkpoint_file_name("checkpoint-epoch-003-step-00120.safetensors");
    REQUIRE(position);
    CHECK((position->epoch == 3 && position->step == 120));
    CHECK_FALSE(parse_checkpoint_file_name("checkpoint-epoch-003.safetensors.tmp-4242"));
    CHECK_FALSE(parse_checkpoint_file_name("checkpoint-epoch-003-step-00000.safetensors"));
    CHECK_FALSE(parse_checkpoint_file_name("weights.safetensors"));
    CHECK(CheckpointPosition{2, 0} < CheckpointPosition{3, 1});
    CHECK(CheckpointPosition{3, 1} < CheckpointPosition{3, 2});
    CHECK(CheckpointPosition{3, 99999} < CheckpointPosition{3, 0});  // the epoch's end comes after its steps

    const test::TempDir temp;
    CHECK(newest_checkpoint(temp.path()).empty());
    CHECK(newest_checkpoint(temp.file("no-such-folder")).empty());
    for (const char* name :
         {"checkpoint-epoch-002.safetensors", "checkpoint-epoch-003-step-00004.safetensors",
          "checkpoint-epoch-003-step-00010.safetensors", "checkpoint-epoch-003.safetensors.tmp-77",
          "checkpoint-epoch-009.txt"})
        test::write_bytes(temp.file(name), "x");
    CHECK(newest_checkpoint(temp.path()) == temp.file("checkpoint-epoch-003-step-00010.safetensors"));
}

TEST_CASE("the resume command repeats the run's arguments with --resume, quoted for the shell", "[train]") {
    CHECK(resume_command({"--epochs", "3", "--resume", "old.safetensors", "--output-dir", "runs/a b"},
                         "runs/a b/c.st") ==
          "cudacnn-train --epochs 3 --output-dir 'runs/a b' --resume 'runs/a b/c.st'");
    CHECK(resume_command({"--resume=x", "--note", "it's"}, "c") ==
          "cudacnn-train --note 'it'\\''s' --resume c");
}

TEST_CASE(
    "an interrupted run saves within the epoch and resumes to the uninterrupted run's weights, bit for bit",
    "[train][interrupt]") {
    struct sigaction before = {};
    sigaction(SIGINT, nullptr, &before);
    const test::TempDir temp;
    std::ostringstream straight_log;
    {
        const test::TempDir straight;
        run_training(tiny_run(straight.path()), straight_log);
    }
    const std::string folder = temp.path();
    // Interrupted three times: within epoch 1, at the last batch of epoch 2 (the run ends the epoch and saves
    // it), and within epoch 3 of the resumed run; each resume starts from the checkpoint the stop wrote.
    const std::vector<std::pair<int64_t, int64_t>> stops = {{1, 2}, {2, 6}, {3, 5}};
    const std::vector<std::string> expected = {"checkpoint-epoch-001-step-00002.safetensors",
                                               "checkpoint-epoch-002.safetensors",
                                               "checkpoint-epoch-003-step-00005.safetensors"};
    std::ostringstream log;
    std::string resume;
    for (size_t i = 0; i < stops.size(); ++i) {
        TrainOptions o = tiny_run(folder);
        o.resume = resume;
        TrainHooks hooks;
        hooks.after_step = [&](int64_t epoch, int64_t batches) {
            if (epoch == stops[i].first && batches == stops[i].second) ::raise(SIGINT);  // a real signal
        };
        const TrainSummary summary = run_training(o, log, hooks);
        INFO(log.str());
        REQUIRE(summary.interrupted_by_signal == SIGINT);
        CHECK(summary.last_checkpoint == temp.file(expected[i]));
        CHECK(newest_checkpoint(folder) == summary.last_checkpoint);
        CHECK_THAT(log.str(), Catch::Contains("interrupted by SIGINT"));
        if (i == 0) {
            // A fresh run in this folder would replace it: refused, as for epoch checkpoints.
            CHECK_THROWS_WITH(run_training(tiny_run(folder), log),
                              Catch::Contains(expected[0] + " is already there"));
        }
        resume = summary.last_checkpoint;
    }
    TrainOptions last = tiny_run(folder);
    last.resume = resume;
    const TrainSummary summary = run_training(last, log);
    INFO(log.str());
    CHECK(summary.interrupted_by_signal == 0);
    CHECK_THAT(log.str(), Catch::Contains("resumed: " + resume + " in epoch 3 after batch 5"));
    check_same_checkpoint(temp.file("checkpoint-epoch-003.safetensors"), reference_final_checkpoint());
    // The resumed epochs' lines count the batches before the stop too.
    CHECK(training_accuracies(log.str()) == training_accuracies(straight_log.str()));
    // SIGINT is back to the handler it had before (Catch's) once a run ends.
    struct sigaction now = {};
    sigaction(SIGINT, nullptr, &now);
    CHECK(now.sa_handler == before.sa_handler);
}

TEST_CASE(
    "cudacnn-train stopped by SIGINT or SIGTERM exits 130 or 143, says how to resume, and resumes exactly",
    "[train][interrupt]") {
    for (const int signal : {SIGINT, SIGTERM}) {
        INFO((signal == SIGINT ? "SIGINT" : "SIGTERM"));
        const test::TempDir temp;
        const std::string folder = temp.file("run");
        std::vector<std::string> args = tiny_run_args(folder);
        args[5] = "30";  // --epochs: long enough that the signal comes mid-run
        const pid_t child = start_train(args, temp.path());
        // Wait for training to start (the first progress line), then signal it, twice: the second one comes
        // while it finishes the step or writes the checkpoint and must change nothing.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (read_text(temp.file("stdout.txt")).find("step 2/") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        kill(child, signal);
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        kill(child, signal);
        const int status = wait_for(child);
        const std::string out = read_text(temp.file("stdout.txt")), err = read_text(temp.file("stderr.txt"));
        INFO(out << err);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 128 + signal);
        const std::string checkpoint = newest_checkpoint(folder);
        REQUIRE(!checkpoint.empty());
        CHECK_THAT(err, Catch::Contains(std::string("interrupted by ") +
                                        (signal == SIGINT ? "SIGINT" : "SIGTERM")) &&
                            Catch::Contains("To go on, run:") && Catch::Contains("--resume " + checkpoint));
        CHECK(io::load_checkpoint(checkpoint).checksum_verified);
        // The command it printed, run as printed (but for the binary's path), ends as the uninterrupted run.
        const std::string printed = err.substr(err.find("  cudacnn-train ") + 16);
        std::string command = std::string(CUDACNN_TRAIN_BINARY) + " " + printed.substr(0, printed.find('\n'));
        command = std::regex_replace(command, std::regex("--epochs 30"), "--epochs 3");
        const bool resumable = io::load_checkpoint(checkpoint).meta.at("epoch").get<int64_t>() < 3;
        if (!resumable) {
            WARN("the signal came after epoch 3; only the exit status and message are checked");
            continue;
        }
        CHECK(std::system((command + " > " + temp.file("resume.txt") + " 2>&1").c_str()) == 0);
        INFO(read_text(temp.file("resume.txt")));
        check_same_checkpoint(folder + "/checkpoint-epoch-003.safetensors", reference_final_checkpoint());
    }
}

TEST_CASE(
    "--resume of a damaged, other-model or newer checkpoint says what is wrong and leaves the file as it was",
    "[train][interrupt]") {
    const test::TempDir temp;
    const std::string good = reference_final_checkpoint();
    const std::string path = temp.file("checkpoint-epoch-003.safetensors");
    const auto resume_error = [&](const std::string& bytes, const std::string& model = "small_cnn") {
        test::write_bytes(path, bytes);
        std::vector<std::string> args = tiny_run_args(temp.file("out"));
        args[1] = model;
        args[5] = "4";  // --epochs: one more than the checkpoint's run
        TrainOptions o = parse_train_args(args).options;
        o.resume = path;
        std::ostringstream log;
        std::string error;
        try {
            run_training(o, log);
        } catch (const Error& e) {
            error = e.what();
        }
        CHECK(test::read_bytes(path) == bytes);  // never written
        return error;
    };
    const std::string whole = test::read_bytes(good);
    std::string flipped = whole;
    flipped[whole.size() - 100] ^= 0x10;
    CHECK_THAT(resume_error(flipped), Catch::Contains(path) && Catch::Contains("checksum does not match") &&
                                          Catch::Contains("resume from the previous checkpoint"));
    CHECK_THAT(resume_error(whole.substr(0, whole.size() / 2)),
               Catch::Contains(path) && Catch::Contains("resume from the previous checkpoint"));
    CHECK_THAT(resume_error(whole, "cifar_cnn"), Catch::Contains(path) &&
                                                     Catch::Contains("is of model 'small_cnn'") &&
                                                     Catch::Contains("--model"));

    io::Checkpoint newer = io::load_checkpoint(good);
    newer.meta["version"] = 99;
    io::save_checkpoint(newer, temp.file("newer.safetensors"));
    CHECK_THAT(
        resume_error(test::read_bytes(temp.file("newer.safetensors"))),
        Catch::Contains(path) && Catch::Contains("format version 99") && Catch::Contains("versions 1 to 2"));
}

TEST_CASE(
    "--resume of a version-1 checkpoint (written before checksums) continues, noting it was not verified",
    "[train][interrupt]") {
    const test::TempDir temp;
    SafetensorsFile old = SafetensorsFile::read(reference_final_checkpoint());
    old.metadata().erase("cudacnn.magic");
    old.metadata().erase("cudacnn.checksum");
    old.metadata()["cudacnn.checkpoint_layout"] = "1";
    nlohmann::json meta = nlohmann::json::parse(old.metadata().at("cudacnn.checkpoint"));
    meta["version"] = 1;
    old.metadata()["cudacnn.checkpoint"] = meta.dump();
    const std::string path = temp.file("checkpoint-epoch-003.safetensors");
    old.write(path);
    std::vector<std::string> args = tiny_run_args(temp.path());
    args[5] = "4";  // --epochs
    TrainOptions o = parse_train_args(args).options;
    o.resume = path;
    std::ostringstream log;
    const TrainSummary summary = run_training(o, log);
    CHECK(summary.epochs_run == 1);
    CHECK_THAT(log.str(), Catch::Contains("older checkpoint without a checksum") &&
                              Catch::Contains("resumed: " + path + " after epoch 3"));
}

TEST_CASE("once a program ends on an interrupt, repeated signals are ignored until it exits", "[train][interrupt]") {
    struct sigaction int_before = {}, term_before = {};
    sigaction(SIGINT, nullptr, &int_before);
    sigaction(SIGTERM, nullptr, &term_before);
    const auto handler_of = [](int signal) {
        struct sigaction now = {};
        sigaction(signal, nullptr, &now);
        return now.sa_handler;
    };
    SECTION("a library run restores the previous handlers, interrupted or not") {
        {
            const train::InterruptGuard guard;
            train::request_interrupt(SIGTERM);
        }
        CHECK(handler_of(SIGINT) == int_before.sa_handler);
        CHECK(handler_of(SIGTERM) == term_before.sa_handler);
    }
    SECTION("cudacnn-train leaves them ignored after an interrupted run, so that a second Ctrl-C while it reports "
            "the checkpoint cannot kill it") {
        {
            const train::EndProgramOnInterrupt program;
            {
                const train::InterruptGuard guard;
                train::request_interrupt(SIGTERM);
            }
            CHECK(handler_of(SIGINT) == SIG_IGN);
            CHECK(handler_of(SIGTERM) == SIG_IGN);
            train::clear_interrupt();
            {
                const train::InterruptGuard guard;  // a run that ends normally restores what it found
            }
            CHECK(handler_of(SIGINT) == SIG_IGN);
        }
        // Once the program's scope ends (an in-process call of train_main), guards restore handlers again.
        sigaction(SIGINT, &int_before, nullptr);
        {
            const train::InterruptGuard guard;
            train::request_interrupt(SIGINT);
        }
        CHECK(handler_of(SIGINT) == int_before.sa_handler);
    }
    train::clear_interrupt();
    sigaction(SIGINT, &int_before, nullptr);
    sigaction(SIGTERM, &term_before, nullptr);
}
