// The `reel` command: one Command class per subcommand, a registry, shared options.
//
// Flow for `reel <group> <name> [options]`: the dispatcher finds the command in the
// registry, the command declares its options (shared groups plus its own), Boost parses
// the whole command line, Setup() checks the values, and only then Run() does the work.
// Exit codes: 0 success, 1 failure (one line on stderr naming the object and the
// cause), 2 usage error (the message and a pointer to --help).

#ifndef REEL_CLI_COMMAND_H_
#define REEL_CLI_COMMAND_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

struct sigaction;

#include "util/status.h"

namespace reel::cli {

namespace po = boost::program_options;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Options every command has.
struct CommonOptions {
  bool verbose = false;
  bool quiet = false;
};

class Command {
 public:
  virtual ~Command() = default;

  // Declares the command's options and positional arguments.
  virtual void AddOptions(po::options_description& options,
                          po::positional_options_description& positional) = 0;
  // Checks parsed values; a non-OK Status is a usage error (exit 2).
  virtual Status Setup(const po::variables_map& vm) { return Status::OK(); }
  // Does the work; returns the exit code (kExitOk or kExitFailure).
  virtual int Run() = 0;

  const CommonOptions& common() const { return common_; }
  CommonOptions& mutable_common() { return common_; }

 protected:
  // Prints "reel: error: <status message>" and returns kExitFailure.
  static int Fail(const Status& status);

 private:
  CommonOptions common_;
};

struct CommandInfo {
  std::string name;      // "curate ingest", "db info", "samples"
  std::string summary;   // one line for listings
  std::string synopsis;  // usage line after "reel "
  std::string details;   // paragraphs shown by --help (may be empty)
  std::function<std::unique_ptr<Command>()> make;
};

// Every command, in the order `reel --help` lists them.
const std::vector<CommandInfo>& Commands();

// --- shared option groups (osmium-tool style) ---
void AddDbOption(po::options_description& options, std::string* db, bool required = true);
// --jobs N (-j), defaulting to *jobs; below 1 is a usage error.
void AddJobsOption(po::options_description& options, int* jobs, const char* what);
void AddJsonOption(po::options_description& options, bool* json);
// --prefer SOURCES, the caption policy (ParseCaptionPreference), defaulting to
// DefaultCaptionPreference(); `what` is its help text.
void AddPreferOption(po::options_description& options, std::string* prefer, const char* what);

// Ctrl-C for long jobs: while an InterruptGuard lives, the first SIGINT or SIGTERM sets
// the flag CancelFlag() points to (jobs stop taking work, commit what is done and mark
// their run interrupted); a second one kills the process as usual.
const std::atomic<bool>* CancelFlag();
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction* old_int_;
  struct sigaction* old_term_;
};

// Entry point for the binary.
int Main(int argc, char** argv);

// Registration hooks, one per file of commands.
void RegisterCaptionCommands(std::vector<CommandInfo>* out);
void RegisterCurateCommands(std::vector<CommandInfo>* out);
void RegisterDbCommands(std::vector<CommandInfo>* out);
void RegisterEvalCommands(std::vector<CommandInfo>* out);
void RegisterGenerateCommands(std::vector<CommandInfo>* out);
void RegisterMiscCommands(std::vector<CommandInfo>* out);
void RegisterModelsCommands(std::vector<CommandInfo>* out);

}  // namespace reel::cli

#endif  // REEL_CLI_COMMAND_H_
