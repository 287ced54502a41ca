// The command line both binaries share: --config FILE, --check-config, --help, --version, plus
// any repeatable "--name VALUE" options a binary declares.
//
//   CommandLine cl;
//   if (auto exit = ParseCommandLine(argc, argv, "tipperary-worker", kUsage, {"--model-path"},
//   &cl))
//     return *exit;   // --help, --version or a usage error was handled
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tipperary::common {

struct CommandLine {
  std::string config_path;  // Never empty after a successful parse.
  bool check_only = false;
  std::map<std::string, std::vector<std::string>> repeated;  // "--model-path" -> values.
};

// Returns the exit code when the program should stop now (0 after --help/--version, 2 on a
// usage error, printed to stderr with the usage), else nullopt with `out` filled.
std::optional<int> ParseCommandLine(int argc, char** argv, const std::string& program,
                                    const std::string& usage,
                                    const std::vector<std::string>& repeatable, CommandLine* out);

}  // namespace tipperary::common
