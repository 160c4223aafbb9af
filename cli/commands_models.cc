// reel models list | fetch | tokenize

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "net/model_fetch.h"
#include "nets/clip_tokenizer.h"
#include "nets/models.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

class ModelsListCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddJsonOption(o, &json_);
  }
  int Run() override {
    Json list = Json::MakeArray();
    if (!json_) std::printf("models folder: %s\n\n", ModelsDir().c_str());
    for (const ModelSpec& m : ModelRegistry()) {
      auto path = InstalledModelPath(m.name);
      if (json_) {
        Json j = Json::MakeObject();
        j["name"] = m.name;
        j["kind"] = m.kind;
        j["description"] = m.description;
        j["installed"] = path.ok();
        j["path"] = path.ok() ? *path : "";
        j["sha256"] = m.sha256;
        j["url"] = m.url;
        list.push_back(j);
      } else {
        std::printf("%-18s %-6s %-10s %-42s %s\n", m.name.c_str(), m.kind.c_str(),
                    FormatBytes(static_cast<uint64_t>(m.approx_bytes)).c_str(),
                    m.description.c_str(), path.ok() ? path->c_str() : "not installed");
      }
    }
    if (json_) std::cout << list.Dump(2) << '\n';
    return kExitOk;
  }

 private:
  bool json_ = false;
};

class ModelsFetchCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()  //
        ("name", po::value<std::vector<std::string>>(&names_)->value_name("NAME")->required(),
         "registry names (positional); see `reel models list`")  //
        ("url", po::value<std::string>(&url_)->value_name("URL"),
         "download from here instead (a mirror); the SHA-256 is still checked")  //
        ("sha256", po::value<std::string>(&sha_)->value_name("HEX"),
         "with --url and a name not in the registry: the file's expected SHA-256");
    p.add("name", -1);
  }

  Status Setup(const po::variables_map&) override {
    if (!url_.empty() && names_.size() != 1) {
      return Status::InvalidArgument("--url fetches one model at a time");
    }
    for (const std::string& n : names_) {
      if (!FindModelSpec(n).ok() && (url_.empty() || sha_.size() != 64)) {
        return Status::InvalidArgument("unknown model '" + n +
                                       "': give --url and --sha256 to fetch a file not in the registry");
      }
    }
    return Status::OK();
  }

  int Run() override {
    std::vector<ModelSpec> todo;
    for (const std::string& n : names_) {
      auto spec = FindModelSpec(n);
      ModelSpec s;
      if (spec.ok()) {
        s = *spec;
        if (!sha_.empty() && sha_ != s.sha256) {
          return Fail(Status::InvalidArgument("--sha256 differs from the registry's digest for " + n));
        }
      } else {
        s.name = n;
        s.file = n;
        s.sha256 = sha_;
        s.description = "file from " + url_;
      }
      todo.push_back(s);
      for (const std::string& dep : s.needs) {
        auto d = FindModelSpec(dep);
        if (d.ok()) todo.push_back(*d);
      }
    }
    int failures = 0;
    for (const ModelSpec& m : todo) {
      Progress::Options popts;
      popts.label = m.name;
      popts.unit = "bytes";
      popts.line_every = 1 << 30;
      if (common().quiet) popts.style = Progress::Style::kNone;
      Progress progress(popts);
      int64_t last = 0;
      auto result = FetchModel(m, m.name == names_.front() ? url_ : "", [&](int64_t now, int64_t total) {
        if (total > 0) progress.SetTotal(total);
        progress.Advance(now - last);
        last = now;
      });
      progress.Finish();
      if (!result.ok()) {
        std::fprintf(stderr, "reel: error: %s\n", result.status().message().c_str());
        ++failures;
        continue;
      }
      if (!common().quiet) std::printf("%s: %s (SHA-256 verified)\n", m.name.c_str(), result->c_str());
    }
    return failures == 0 ? kExitOk : kExitFailure;
  }

 private:
  std::vector<std::string> names_;
  std::string url_, sha_;
};

class ModelsTokenizeCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()  //
        ("text", po::value<std::vector<std::string>>(&texts_)->value_name("TEXT")->required(),
         "texts to tokenize (positional)")  //
        ("vocab", po::value<std::string>(&vocab_)->value_name("FILE"),
         "the BPE merges file (default: the installed clip-vocab)")  //
        ("context-length", po::value<int>(&context_)->default_value(0),
         "pad or cut to this many tokens (0: start, tokens, end, no padding)")  //
        ("truncate", po::bool_switch(&truncate_), "cut texts longer than the context length");
    p.add("text", -1);
  }

  int Run() override {
    auto path = vocab_.empty() ? InstalledModelPath("clip-vocab") : Result<std::string>(vocab_);
    if (!path.ok()) return Fail(path.status());
    auto tokenizer = ClipTokenizer::Load(*path);
    if (!tokenizer.ok()) return Fail(tokenizer.status());
    for (const std::string& text : texts_) {
      std::vector<int> ids;
      if (context_ > 0) {
        auto t = (*tokenizer)->Tokenize(text, context_, truncate_);
        if (!t.ok()) return Fail(t.status().WithContext("'" + text + "'"));
        ids = *t;
      } else {
        ids = {ClipTokenizer::kStartToken};
        const std::vector<int> body = (*tokenizer)->Encode(text);
        ids.insert(ids.end(), body.begin(), body.end());
        ids.push_back(ClipTokenizer::kEndToken);
      }
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
    }
    return kExitOk;
  }

 private:
  std::vector<std::string> texts_;
  std::string vocab_;
  int context_ = 0;
  bool truncate_ = false;
};

}  // namespace

void RegisterModelsCommands(std::vector<CommandInfo>* out) {
  out->push_back({"models list", "pretrained files reel knows, and which are installed",
                  "models list [--json]", "",
                  [] { return std::make_unique<ModelsListCommand>(); }});
  out->push_back({"models fetch", "download pretrained files, verifying their SHA-256",
                  "models fetch NAME... [--url URL] [--sha256 HEX]",
                  "Files go to $REEL_MODELS_DIR (default ~/.cache/reel/models) and are kept only\n"
                  "if their SHA-256 matches. CLIP models bring the CLIP vocabulary along.",
                  [] { return std::make_unique<ModelsFetchCommand>(); }});
  out->push_back({"models tokenize", "print the CLIP token ids of texts, one line each",
                  "models tokenize [--vocab FILE] [--context-length N [--truncate]] TEXT...", "",
                  [] { return std::make_unique<ModelsTokenizeCommand>(); }});
}

}  // namespace reel::cli
