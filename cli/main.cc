#include "cli/command.h"

int main(int argc, char** argv) {
  return reel::cli::Main(argc, argv);
}
