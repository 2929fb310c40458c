// Command-line pieces shared by cudacnn-eval and cudacnn-viz (see cli.hpp).
#include "cudacnn/train/cli.hpp"

#include "cudacnn/train/options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "cudacnn/error_text.hpp"

namespace cudacnn::train {
namespace {

[[noreturn]] void usage(const std::string& message) { throw UsageError(message); }

const FlagSpec* find_flag(const std::vector<FlagSpec>& table, const std::string& token) {
    for (const FlagSpec& flag : table) {
        if (token.rfind("--", 0) == 0 ? token.substr(2) == flag.name
                                      : token.size() >= 2 && flag.short_name != 0 && token[1] == flag.short_name)
            return &flag;
    }
    return nullptr;
}

[[noreturn]] void unknown_flag(const std::string& token, const std::vector<FlagSpec>& table,
                               const std::string& program) {
    const std::string written = token.substr(0, token.find('='));
    const std::string bare = written.substr(std::min(written.find_first_not_of('-'), written.size()));
    const FlagSpec* nearest = nullptr;
    std::size_t best = 0;
    for (const FlagSpec& flag : table) {
        const std::size_t distance = edit_distance(bare, flag.name);
        if (nearest == nullptr || distance < best) nearest = &flag, best = distance;
    }
    // Only a near miss is worth suggesting: a third of the letters wrong at most (2 for short names).
    if (nearest != nullptr && !bare.empty() && best <= std::max<std::size_t>(2, bare.size() / 3))
        usage(fmt::format("unknown flag '{}'; did you mean '--{}'? ({} --help lists the flags)", written,
                          nearest->name, program));
    usage(fmt::format("unknown flag '{}' ({} --help lists the flags)", written, program));
}

template <class T>
bool parse_number(const std::string& text, T& value) {
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    return error == std::errc() && stop == end;
}

}  // namespace

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
        }
    }
    return row[b.size()];
}

bool looks_like_flag(const std::string& token) {
    return token.size() > 1 && token[0] == '-' && !std::isdigit(static_cast<unsigned char>(token[1])) &&
           token[1] != '.';
}

void FlagValue::fail(const std::string& problem) const { usage(fmt::format("{} {}: {}", flag, text, problem)); }

int64_t FlagValue::integer(int64_t min) const {
    int64_t value = 0;
    if (!parse_number(text, value)) fail("not a whole number");
    if (value < min) fail(fmt::format("must be at least {}", min));
    return value;
}

double FlagValue::real() const {
    double value = 0.0;
    const std::size_t slash = text.find('/');
    if (slash != std::string::npos) {
        double numerator = 0.0, denominator = 0.0;
        if (!parse_number(text.substr(0, slash), numerator) || !parse_number(text.substr(slash + 1), denominator) ||
            denominator == 0.0)
            fail("not a number (a fraction A/B needs two numbers and B != 0)");
        value = numerator / denominator;
    } else if (!parse_number(text, value)) {
        fail("not a number");
    }
    if (!std::isfinite(value)) fail("must be a finite number");
    return value;
}

std::string FlagValue::path() const {
    if (text.empty()) fail("needs a non-empty path");
    return text;
}

bool CommandLine::has(const std::string& flag) const { return last(flag) != nullptr; }

const FlagValue* CommandLine::last(const std::string& flag) const {
    for (auto it = flags.rbegin(); it != flags.rend(); ++it)
        if (it->flag == flag) return &*it;
    return nullptr;
}

CommandLine parse_command_line(const std::vector<std::string>& args, const std::vector<FlagSpec>& table,
                               const std::string& program, bool positionals) {
    CommandLine line;
    if (std::find(args.begin(), args.end(), "-h") != args.end() ||
        std::find(args.begin(), args.end(), "--help") != args.end()) {
        line.help = true;
        return line;
    }
    const FlagSpec* previous_switch = nullptr;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& token = args[i];
        if (!looks_like_flag(token)) {
            if (!positionals) {
                if (previous_switch != nullptr)
                    usage(fmt::format("unexpected argument '{}': --{} takes no value", token, previous_switch->name));
                usage(fmt::format("unexpected argument '{}': {} takes only flags ({} --help lists them)", token,
                                  program, program));
            }
            line.positionals.push_back(token);
            continue;
        }
        const bool long_form = token.rfind("--", 0) == 0;
        const std::size_t equals = long_form ? token.find('=') : std::string::npos;
        const FlagSpec* flag = find_flag(table, token.substr(0, equals));
        if (flag == nullptr || (!long_form && token.size() > 2 && flag->value_name == nullptr)) unknown_flag(token, table, program);
        const std::string name = std::string("--") + flag->name;
        std::vector<std::string> values;
        if (equals != std::string::npos) values.push_back(token.substr(equals + 1));
        if (!long_form && token.size() > 2) values.push_back(token.substr(2));
        previous_switch = flag->value_name == nullptr ? flag : nullptr;
        if (flag->value_name == nullptr) {
            if (!values.empty()) usage(fmt::format("{} takes no value (got '{}')", name, values.front()));
            line.flags.push_back({name, ""});
            continue;
        }
        while (i + 1 < args.size() && !looks_like_flag(args[i + 1]) && (values.empty() || flag->many))
            values.push_back(args[++i]);
        if (values.empty() || values.front().empty())
            usage(fmt::format("{} needs a value: {} {}", name, name, flag->value_name));
        for (const std::string& value : values) line.flags.push_back({name, value});
    }
    return line;
}

std::string flags_help(const std::vector<FlagSpec>& table) {
    std::string text;
    for (const FlagSpec& flag : table) {
        std::string title = flag.short_name != 0 ? fmt::format("-{}, --{}", flag.short_name, flag.name)
                                                 : fmt::format("    --{}", flag.name);
        if (flag.value_name != nullptr) title += fmt::format(" {}", flag.value_name);
        text += fmt::format("  {:<34} {}\n", title, flag.help);
    }
    return text;
}

int program_main(const std::string& program, const std::function<bool()>& parse,
                 const std::function<std::string()>& usage, const std::function<int()>& run, std::ostream& out,
                 std::ostream& err) {
    try {
        if (!parse()) {
            out << usage();
            return 0;
        }
    } catch (const UsageError& e) {
        err << program << ": " << e.what() << "\nRun '" << program << " --help' for the flags.\n";
        return 2;
    }
    try {
        return run();
    } catch (const Error& e) {
        // The source location is for the developers; the person at the terminal gets the message alone.
        out.flush();
        err << program << ": error: " << without_location(e) << "\n";
        return 1;
    } catch (const std::exception& e) {
        out.flush();
        err << program << ": error: " << e.what() << "\n";
        return 1;
    }
}

DeviceChoice device_choice(const FlagValue& value) {
    for (const auto choice : {DeviceChoice::auto_, DeviceChoice::cuda, DeviceChoice::cpu, DeviceChoice::cpu_reference})
        if (value.text == device_choice_name(choice)) return choice;
    value.fail("use auto, cuda, cpu or cpu-ref");
    return DeviceChoice::auto_;
}

}  // namespace cudacnn::train
