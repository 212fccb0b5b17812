// The `moestream` executable: every subcommand is registered by its own file
// in the cli library (command.h).
#include <string>
#include <vector>

#include "cli/command.h"

int main(int argc, char** argv) {
  return moestream::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
}
