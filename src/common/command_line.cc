#include "tipperary/common/command_line.h"

#include <algorithm>
#include <iostream>

namespace tipperary::common {
namespace {

// "--name VALUE" or "--name=VALUE": true and `value` set when `argv[*i]` is that option.
bool TakeValue(int argc, char** argv, int* i, const std::string& name, std::string* value) {
  std::string arg = argv[*i];
  if (arg == name && *i + 1 < argc) {
    *value = argv[++*i];
    return true;
  }
  if (arg.rfind(name + "=", 0) == 0) {
    *value = arg.substr(name.size() + 1);
    return true;
  }
  return false;
}

}  // namespace

std::optional<int> ParseCommandLine(int argc, char** argv, const std::string& program,
                                    const std::string& usage,
                                    const std::vector<std::string>& repeatable, CommandLine* out) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << program << " " << TIPPERARY_VERSION << "\n";
      return 0;
    }
    if (arg == "--check-config") {
      out->check_only = true;
      continue;
    }
    if (TakeValue(argc, argv, &i, "--config", &value)) {
      out->config_path = value;
      continue;
    }
    auto it = std::find_if(repeatable.begin(), repeatable.end(), [&](const std::string& name) {
      return TakeValue(argc, argv, &i, name, &value);
    });
    if (it != repeatable.end()) {
      out->repeated[*it].push_back(value);
      continue;
    }
    std::cerr << program << ": unknown argument \"" << arg << "\"\n\n" << usage;
    return 2;
  }
  if (out->config_path.empty()) {
    std::cerr << program << ": --config FILE is required\n\n" << usage;
    return 2;
  }
  return std::nullopt;
}

}  // namespace tipperary::common
