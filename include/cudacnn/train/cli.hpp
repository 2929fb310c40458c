// Command-line pieces shared by cudacnn-eval and cudacnn-viz (argparse conventions, as cudacnn-train's):
// a table of flags, parsing into (flag, value) pairs and positional arguments, did-you-mean for unknown
// flags, typed values whose complaints name the flag, and the --help listing.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "cudacnn/train/options.hpp"  // UsageError

namespace cudacnn::train {

struct FlagSpec {
    const char* name;        // without the leading "--"
    char short_name;         // 0: none
    const char* value_name;  // nullptr: a switch
    const char* help;
    bool many = false;       // takes every following value up to the next flag (--predict A.jpg B.png)
};

// One given value, for the typed readers below: their complaints start with "--flag value: ".
struct FlagValue {
    std::string flag;  // "--limit"
    std::string text;

    int64_t integer(int64_t min) const;  // a whole number >= min
    double real() const;                 // a finite number; "A/B" is accepted too (8/255)
    std::string path() const;            // non-empty
    void fail(const std::string& problem) const;  // throws UsageError
};

enum class DeviceChoice;  // options.hpp

// --device's value in cudacnn-eval and cudacnn-viz: auto, cuda, cpu or cpu-ref (fail() otherwise).
DeviceChoice device_choice(const FlagValue& value);

struct CommandLine {
    std::vector<FlagValue> flags;          // in the order given (a switch has empty text)
    std::vector<std::string> positionals;  // arguments that are not flags or their values
    bool help = false;                     // -h / --help anywhere: nothing else was read

    bool has(const std::string& flag) const;  // "--tta"
    // The last value of a flag (a repeated flag's last value wins), or nullptr.
    const FlagValue* last(const std::string& flag) const;
};

// `--flag value`, `--flag=value`, `-b 64`, `-b64`; a value may start with '-' only as a number ("-1");
// a flag with `many` takes values up to the next flag. Throws UsageError naming `program` for unknown flags
// (with the nearest known one when it is a near miss), a missing value, a value given to a switch, and
// positional arguments when `positionals` is false.
CommandLine parse_command_line(const std::vector<std::string>& args, const std::vector<FlagSpec>& table,
                               const std::string& program, bool positionals);

// The table as --help lines: "  --limit N          use only the first N images".
std::string flags_help(const std::vector<FlagSpec>& table);

// What every program's main does around its own work, so that all of them answer alike: `parse` reads the
// arguments and returns false when --help was asked (then `usage` is printed and the exit code is 0); a
// UsageError from it prints "<program>: <problem>" and a pointer to --help (exit code 2); `run` does the work
// and returns the exit code, and any error it throws prints "<program>: error: <what>" (exit code 1).
int program_main(const std::string& program, const std::function<bool()>& parse,
                 const std::function<std::string()>& usage, const std::function<int()>& run, std::ostream& out,
                 std::ostream& err);

// Levenshtein distance, for did-you-mean suggestions (flags, subcommands, layer names).
std::size_t edit_distance(const std::string& a, const std::string& b);
// A token that is a flag rather than a value; "-1" and "-.5" are values (negative numbers).
bool looks_like_flag(const std::string& token);

}  // namespace cudacnn::train
