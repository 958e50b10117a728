// dpep: one binary, subcommands registered by launch/cmd_*.cpp.
#include <fmt/format.h>

#include <cstring>
#include <exception>

#include "launch/command.h"
#include "launch/openblas_core.h"

namespace dpep {
std::map<std::string, Command>& command_table() {
  static std::map<std::string, Command> table;
  return table;
}
}  // namespace dpep

static void print_usage() {
  fmt::print(
      "usage: dpep <command> [options]   (dpep <command> --help for its options)\n\ncommands:\n");
  for (const auto& [name, cmd] : dpep::command_table())
    fmt::print("  {:<12} {}\n", name, cmd.summary);
}

int main(int argc, char** argv) {
  // First, before MPI_Init and before any thread of ours: OpenBLAS reads OPENBLAS_CORETYPE only
  // when it loads, so fixing a fallback core choice needs a fresh process image.
  dpep::openblas_reexec_if_needed(argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  auto& table = dpep::command_table();
  auto it = table.find(argv[1]);
  if (it == table.end()) {
    fmt::print(stderr, "dpep: unknown command '{}'\n", argv[1]);
    print_usage();
    return 2;
  }
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    fmt::print(stderr, "dpep {}: error: {}\n", argv[1], e.what());
    return 1;
  }
}
