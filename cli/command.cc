#include "cli/command.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "db/catalog.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/version.h"

namespace reel::cli {
namespace {

constexpr const char* kGroupSummaries[][2] = {
    {"curate", "turn raw footage into catalogued training clips"},
    {"caption", "write captions for clips"},
    {"generate", "train the text-to-video model and sample from it"},
    {"eval", "score generated videos against real ones"},
    {"report", "leaderboards and dataset cards"},
    {"db", "inspect, export and query the catalog"},
    {"models", "pretrained weights: list and fetch"},
};

std::string GroupOf(const std::string& name) {
  const size_t space = name.find(' ');
  return space == std::string::npos ? name : name.substr(0, space);
}

void PrintMainHelp(std::ostream& out) {
  out << "reel " << REEL_VERSION
      << " - from raw video to training clips, captions, generated clips and leaderboards\n\n"
      << "Usage: reel <command> [options]\n"
      << "       reel <command> --help\n"
      << "       reel --version\n\n"
      << "Commands:\n";
  size_t width = 0;
  for (const auto& c : Commands()) width = std::max(width, c.name.size());
  std::string last_group;
  for (const auto& c : Commands()) {
    const std::string group = GroupOf(c.name);
    if (group != last_group && !last_group.empty()) out << '\n';
    last_group = group;
    out << "  " << c.name << std::string(width - c.name.size() + 2, ' ') << c.summary << '\n';
  }
  out << "\nExit status: 0 success, 1 failure, 2 usage error.\n";
}

void PrintGroupHelp(std::ostream& out, const std::string& group) {
  std::string summary;
  for (const auto& g : kGroupSummaries) {
    if (group == g[0]) summary = g[1];
  }
  out << "reel " << group << (summary.empty() ? "" : " - " + summary) << "\n\nCommands:\n";
  size_t width = 0;
  for (const auto& c : Commands()) {
    if (GroupOf(c.name) == group) width = std::max(width, c.name.size());
  }
  for (const auto& c : Commands()) {
    if (GroupOf(c.name) == group) {
      out << "  reel " << c.name << std::string(width - c.name.size() + 2, ' ') << c.summary
          << '\n';
    }
  }
  out << "\nRun 'reel " << group << " <command> --help' for a command's options.\n";
}

void AddCommonOptions(po::options_description& options, CommonOptions* common, bool* help) {
  options.add_options()                                    //
      ("help,h", po::bool_switch(help), "show this help")  //
      ("verbose,v", po::bool_switch(&common->verbose), "say more (debug messages, libav's log)")(
          "quiet,q", po::bool_switch(&common->quiet), "print only errors");
}

void PrintVersion() {
  std::printf("reel %s (commit %s)\n", REEL_VERSION, REEL_GIT_COMMIT);
}

int UsageError(const std::string& message, const std::string& command) {
  std::fprintf(stderr, "reel: %s\n", message.c_str());
  std::fprintf(stderr, "Try 'reel %s--help'.\n", command.empty() ? "" : (command + " ").c_str());
  return kExitUsage;
}

}  // namespace

int Command::Fail(const Status& status) {
  std::fprintf(stderr, "reel: error: %s\n", status.message().c_str());
  return kExitFailure;
}

const std::vector<CommandInfo>& Commands() {
  static const std::vector<CommandInfo> kCommands = [] {
    std::vector<CommandInfo> all;
    RegisterCurateCommands(&all);
    RegisterCaptionCommands(&all);
    RegisterGenerateCommands(&all);
    RegisterEvalCommands(&all);
    RegisterDbCommands(&all);
    RegisterModelsCommands(&all);
    RegisterMiscCommands(&all);
    return all;
  }();
  return kCommands;
}

void AddDbOption(po::options_description& options, std::string* db, bool required) {
  auto* value = po::value<std::string>(db)->value_name("FILE");
  if (required) value->required();
  options.add_options()("db", value, "the catalog file (SQLite)");
}

void AddJobsOption(po::options_description& options, int* jobs, const char* what) {
  options.add_options()(
      "jobs,j", po::value<int>(jobs)->value_name("N")->default_value(*jobs)->notifier([](int n) {
        if (n < 1) throw po::error("--jobs must be at least 1");
      }),
      what);
}

void AddPreferOption(po::options_description& options, std::string* prefer, const char* what) {
  options.add_options()("prefer",
                        po::value<std::string>(prefer)->value_name("SOURCES")->default_value(
                            Join(DefaultCaptionPreference(), ",")),
                        what);
}

void AddJsonOption(po::options_description& options, bool* json) {
  options.add_options()("json", po::bool_switch(json),
                        "print the result as JSON on stdout (no progress output)");
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    PrintMainHelp(std::cerr);
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (args.size() >= 2) {
      // "reel help curate ingest" == "reel curate ingest --help"
      std::vector<std::string> rest(args.begin() + 1, args.end());
      rest.push_back("--help");
      args = rest;
    } else {
      PrintMainHelp(std::cout);
      return kExitOk;
    }
  }
  if (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
    PrintVersion();
    return kExitOk;
  }

  // Longest match: "curate ingest" before "curate".
  const CommandInfo* info = nullptr;
  size_t consumed = 0;
  for (const auto& c : Commands()) {
    const std::vector<std::string> words = Split(c.name, ' ');
    if (words.size() <= args.size() && std::equal(words.begin(), words.end(), args.begin()) &&
        words.size() > consumed) {
      info = &c;
      consumed = words.size();
    }
  }
  if (info == nullptr) {
    std::set<std::string> groups;
    for (const auto& c : Commands()) groups.insert(GroupOf(c.name));
    if (groups.count(args[0])) {
      const bool asked = args.size() >= 2 && (args[1] == "--help" || args[1] == "-h");
      if (!asked && args.size() >= 2) {
        std::fprintf(stderr, "reel: unknown command 'reel %s %s'\n\n", args[0].c_str(),
                     args[1].c_str());
      }
      PrintGroupHelp(asked ? std::cout : std::cerr, args[0]);
      return asked ? kExitOk : kExitUsage;
    }
    return UsageError("unknown command '" + args[0] + "'", "");
  }

  std::unique_ptr<Command> command = info->make();
  po::options_description own("Options");
  po::positional_options_description positional;
  command->AddOptions(own, positional);
  bool help = false;
  po::options_description common("Common options");
  AddCommonOptions(common, &command->mutable_common(), &help);
  po::options_description all;
  all.add(own).add(common);

  auto print_help = [&](std::ostream& out) {
    out << "Usage: reel " << info->synopsis << "\n\n" << info->summary << ".\n";
    if (!info->details.empty()) out << '\n' << info->details << '\n';
    out << '\n' << all << '\n';
  };

  std::vector<std::string> rest(args.begin() + static_cast<long>(consumed), args.end());
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(rest).options(all).positional(positional).run(), vm);
    // Switches reach their variables only in notify(), which checks required options;
    // --help must work without them, so it is read from the map.
    help = vm.count("help") > 0 && vm["help"].as<bool>();
    if (help) {
      print_help(std::cout);
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    if (help) {
      print_help(std::cout);
      return kExitOk;
    }
    return UsageError(e.what(), info->name);
  }
  const CommonOptions& c = command->common();
  if (c.verbose && c.quiet)
    return UsageError("--verbose and --quiet exclude each other", info->name);
  SetLogLevel(c.verbose ? LogLevel::kDebug : (c.quiet ? LogLevel::kError : LogLevel::kInfo));
  Status setup = command->Setup(vm);
  if (!setup.ok()) return UsageError(setup.message(), info->name);
  try {
    return command->Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reel: internal error: %s\n", e.what());
    return kExitFailure;
  }
}

namespace {
std::atomic<bool> g_cancel{false};
extern "C" void OnInterrupt(int) {
  g_cancel.store(true);
}
}  // namespace

const std::atomic<bool>* CancelFlag() {
  return &g_cancel;
}

InterruptGuard::InterruptGuard()
    : old_int_(new struct sigaction()), old_term_(new struct sigaction()) {
  g_cancel.store(false);
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, old_int_);
  sigaction(SIGTERM, &sa, old_term_);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, old_int_, nullptr);
  sigaction(SIGTERM, old_term_, nullptr);
  delete old_int_;
  delete old_term_;
}

}  // namespace reel::cli
