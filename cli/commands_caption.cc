// reel caption: recaption clips with one backend.

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "caption/captioner.h"
#include "cli/command.h"
#include "db/catalog.h"
#include "util/json.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

constexpr const char* kBackends = "signals, original, clip, vlm, merge";

class CaptionCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_, /*required=*/false);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("backend,b", po::value<std::string>(&backend_)->value_name("NAME"),
         "signals | original | clip | vlm | merge")  //
        ("subset", po::value<std::string>(&run_.subset)->value_name("NAME"),
         "only clips that passed this subset (see `reel curate filter`)")  //
        ("clip", po::value<std::vector<int64_t>>(&run_.clip_ids)->value_name("ID")->composing(),
         "only these clips (repeatable)")                                                        //
        ("limit", po::value<int64_t>(&run_.limit)->value_name("N"), "at most N clips this run")  //
        ("redo", po::bool_switch(&run_.redo),
         "caption again clips that already have this backend's caption (it is replaced)")  //
        ("skip-failed", po::bool_switch(&skip_failed_),
         "do not retry clips that failed with this backend and model before")  //
        ("include-rejected", po::bool_switch(&run_.include_rejected),
         "also caption clips in state 'rejected'")  //
        ("jobs,j", po::value<int>(&jobs_)->value_name("N"),
         "clips in flight at once (default: 1; clip: 2; vlm and merge: --concurrency)")  //
        ("model,m", po::value<std::string>(&model_)->value_name("NAME"),
         "vlm / merge --rewrite: the model name the server serves")  //
        ("endpoint", po::value<std::string>(&endpoint_.url)->value_name("URL"),
         "vlm / merge --rewrite: an OpenAI-compatible server, e.g. http://host:8000/v1 "
         "(default $REEL_CHAT_ENDPOINT, else http://127.0.0.1:8000/v1)")  //
        ("api-key-env",
         po::value<std::string>(&api_key_env_)->default_value("OPENAI_API_KEY")->value_name("VAR"),
         "environment variable holding the API key (sent as a Bearer token; never logged)")  //
        ("concurrency", po::value<int>(&concurrency_)->default_value(8)->value_name("N"),
         "vlm / merge --rewrite: requests in flight at once, to keep the server's batches full")  //
        ("timeout",
         po::value<double>(&endpoint_.timeout_seconds)->default_value(120)->value_name("SECONDS"),
         "per request")  //
        ("retries", po::value<int>(&endpoint_.retries)->default_value(4)->value_name("N"),
         "extra attempts after a refused connection, a timeout, HTTP 408/409/429/5xx or a "
         "malformed reply")  //
        ("retry-wait",
         po::value<double>(&endpoint_.retry_wait_seconds)->default_value(1)->value_name("SECONDS"),
         "first back-off, doubled each retry (Retry-After wins when the server sends it)")  //
        ("max-retry-wait",
         po::value<double>(&endpoint_.max_retry_wait_seconds)
             ->default_value(60)
             ->value_name("SECONDS"),
         "cap on any single wait, Retry-After included")  //
        ("prompt-file", po::value<std::string>(&prompt_file_)->value_name("FILE"),
         "vlm: the prompt template ({frames}, {duration}, {original}, {tags}, {signals}; "
         "[ ... ] drops when empty)")  //
        ("system-prompt-file", po::value<std::string>(&system_prompt_file_)->value_name("FILE"),
         "vlm: a system message")  //
        ("frames", po::value<int>(&frames_)->value_name("N"),
         "frames per clip (vlm: 8 evenly spaced; clip: 3 at 10/50/90%)")  //
        ("max-side", po::value<int>(&vlm_.max_side)->default_value(512)->value_name("PIXELS"),
         "vlm: longer side of the JPEG frames")  //
        ("max-tokens", po::value<int>(&max_tokens_)->default_value(400)->value_name("N"),
         "vlm / merge --rewrite: reply length limit")  //
        ("temperature",
         po::value<double>(&temperature_)->default_value(0.2, "0.2")->value_name("T"),
         "vlm / merge --rewrite: sampling temperature")  //
        ("template", po::value<std::string>(&template_file_)->value_name("FILE"),
         "merge: the template ({vlm}, {clip}, {signals}, {original}); with --rewrite, the "
         "message sent to the LLM")  //
        ("rewrite", po::bool_switch(&merge_.rewrite),
         "merge: have an LLM rewrite the pieces into one caption (--model, --endpoint)")  //
        ("clip-model",
         po::value<std::string>(&clip_.model)
             ->default_value("clip-vit-b-32")
             ->value_name("NAME|PATH"),
         "clip: an installed CLIP (see `reel models list`) or an OpenAI archive file")  //
        ("clip-vocab", po::value<std::string>(&clip_.vocab)->value_name("PATH"),
         "clip: CLIP's bpe_simple_vocab_16e6.txt.gz (default: the installed clip-vocab)")  //
        ("vocabulary", po::value<std::string>(&clip_.vocabulary_file)->value_name("FILE"),
         "clip: a tag vocabulary replacing the built-in one (see --print-vocabulary)")  //
        ("aesthetic", po::value<std::string>(&clip_.aesthetic)->value_name("NAME|PATH"),
         "clip: also store LAION aesthetic scores (aesthetic-laion; needs clip-vit-l-14)")  //
        ("score-only", po::bool_switch(&score_only_),
         "clip: only store matching (and aesthetic) scores, no tag captions")  //
        ("device",
         po::value<std::string>(&clip_.device)->default_value("cpu")->value_name("cpu|cuda"),
         "clip: where CLIP runs (cuda runs in bf16)")  //
        ("print-vocabulary", po::bool_switch(&print_vocabulary_),
         "print the built-in CLIP tag vocabulary and exit")  //
        ("print-prompts", po::bool_switch(&print_prompts_),
         "print the default VLM prompt, merge template and rewrite prompt and exit");
  }

  Status Setup(const po::variables_map& vm) override {
    if (print_vocabulary_ || print_prompts_) return Status::OK();
    if (db_.empty()) return Status::InvalidArgument("the option '--db' is required");
    if (backend_.empty()) {
      return Status::InvalidArgument(std::string("the option '--backend' is required (") +
                                     kBackends + ")");
    }
    if (backend_ != "signals" && backend_ != "original" && backend_ != "clip" &&
        backend_ != "vlm" && backend_ != "merge") {
      return Status::InvalidArgument("unknown backend '" + backend_ + "' (known: " + kBackends +
                                     ")");
    }
    if (concurrency_ < 1 || concurrency_ > 256) {
      return Status::InvalidArgument("--concurrency must be from 1 to 256");
    }
    if (endpoint_.retries < 0 || endpoint_.timeout_seconds <= 0 ||
        endpoint_.retry_wait_seconds < 0) {
      return Status::InvalidArgument("--retries, --timeout and --retry-wait must not be negative");
    }
    if (vm.count("jobs") && jobs_ < 1) return Status::InvalidArgument("--jobs must be at least 1");
    if (vm.count("limit") && run_.limit < 1)
      return Status::InvalidArgument("--limit must be at least 1");
    if (endpoint_.url.empty()) {
      const char* env = std::getenv("REEL_CHAT_ENDPOINT");
      endpoint_.url = env != nullptr && *env != '\0' ? env : "http://127.0.0.1:8000/v1";
    }
    if (!vm.count("jobs")) {
      jobs_ = backend_ == "vlm" || (backend_ == "merge" && merge_.rewrite) ? concurrency_
              : backend_ == "clip"                                         ? 2
                                                                           : 1;
    }
    run_.jobs = jobs_;
    run_.retry_failed = !skip_failed_;
    return Status::OK();
  }

  int Run() override {
    if (print_vocabulary_) {
      std::fputs(DefaultClipVocabulary().c_str(), stdout);
      return kExitOk;
    }
    if (print_prompts_) {
      std::printf(
          "# VLM prompt (--prompt-file)\n%s\n\n# merge template (--template)\n%s\n\n"
          "# rewrite prompt (--template with --rewrite)\n%s\n",
          kDefaultVlmPrompt, kDefaultMergeTemplate, kDefaultRewritePrompt);
      return kExitOk;
    }
    Result<std::unique_ptr<Captioner>> captioner = MakeCaptioner();
    if (!captioner.ok()) return Fail(captioner.status());
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());

    Progress::Options popts;
    popts.label = "caption " + backend_;
    popts.unit = "clips";
    if (json_ || common().quiet) popts.style = Progress::Style::kNone;
    Progress progress(popts);
    run_.cancel = CancelFlag();
    run_.on_start = [&](int64_t total) { progress.SetTotal(total); };
    run_.on_clip = [&](int64_t clip_id, const Status& status) {
      progress.Advance(1);
      if (!status.ok() && status.code() != StatusCode::kNotFound && common().verbose) {
        Log(LogLevel::kWarning, "clip " + std::to_string(clip_id) + ": " + status.message());
      }
    };
    InterruptGuard guard;
    Result<CaptionRunSummary> result = RunCaptions(**catalog, **captioner, run_);
    if (!result.ok()) {
      progress.Finish();
      return Fail(result.status());
    }
    const CaptionRunSummary& s = *result;
    const std::string model = (*captioner)->model();
    std::string line = "caption " + backend_ + (model.empty() ? "" : " (" + model + ")") + ": " +
                       std::to_string(s.clips) + " clips: " + std::to_string(s.captioned) +
                       " captioned, " + std::to_string(s.done_before) + " already done, " +
                       std::to_string(s.failed) + " failed";
    if (s.scored_only > 0) line += ", " + std::to_string(s.scored_only) + " scored";
    if (s.no_text > 0) line += ", " + std::to_string(s.no_text) + " without any text";
    if (s.skipped_failed > 0)
      line += ", " + std::to_string(s.skipped_failed) + " failed before (skipped)";
    line += " in " + FormatDuration(s.seconds);
    if (s.cancelled) line += " (interrupted; rerun to finish)";
    progress.Finish(common().quiet || json_ ? "" : line);

    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = s.run_id;
      j["backend"] = backend_;
      j["model"] = (*captioner)->model();
      j["clips"] = s.clips;
      j["captioned"] = s.captioned;
      j["done_before"] = s.done_before;
      j["scored_only"] = s.scored_only;
      j["no_text"] = s.no_text;
      j["failed"] = s.failed;
      j["skipped_failed"] = s.skipped_failed;
      j["cancelled"] = s.cancelled;
      j["seconds"] = s.seconds;
      Json failures = Json::MakeArray();
      for (const auto& [clip, why] : s.failures) {
        Json f = Json::MakeObject();
        f["clip"] = clip;
        f["error"] = why;
        failures.push_back(f);
      }
      j["failures"] = failures;
      std::cout << j.Dump(2) << '\n';
    }
    constexpr size_t kShown = 10;
    for (size_t i = 0; i < s.failures.size() && i < kShown; ++i) {
      std::fprintf(stderr, "reel: error: clip %lld: %s\n",
                   static_cast<long long>(s.failures[i].first), s.failures[i].second.c_str());
    }
    if (s.failures.size() > kShown) {
      std::fprintf(stderr,
                   "reel: ... and %zu more; list them with: reel db query --db %s "
                   "\"SELECT clip_id, attempts, error FROM caption_errors WHERE source = '%s'\"\n",
                   s.failures.size() - kShown, db_.c_str(),
                   backend_ == "merge" ? "merged" : backend_.c_str());
    }
    return s.all_ok() ? kExitOk : kExitFailure;
  }

 private:
  Result<std::string> ReadOptional(const std::string& path) {
    if (path.empty()) return std::string();
    return ReadTextFile(path);
  }

  Result<std::unique_ptr<Captioner>> MakeCaptioner() {
    if (const char* key = std::getenv(api_key_env_.c_str()); key != nullptr)
      endpoint_.api_key = key;
    if (backend_ == "signals") return MakeSignalsCaptioner();
    if (backend_ == "original") return MakeOriginalCaptioner();
    if (backend_ == "clip") {
      clip_.frames = frames_ > 0 ? frames_ : 3;
      clip_.tags = !score_only_;
      return MakeClipCaptioner(clip_);
    }
    if (backend_ == "vlm") {
      vlm_.endpoint = endpoint_;
      vlm_.model = model_;
      vlm_.frames = frames_ > 0 ? frames_ : 8;
      vlm_.max_tokens = max_tokens_;
      vlm_.temperature = temperature_;
      REEL_ASSIGN_OR_RETURN(vlm_.prompt_template, ReadOptional(prompt_file_));
      REEL_ASSIGN_OR_RETURN(vlm_.system_prompt, ReadOptional(system_prompt_file_));
      vlm_.system_prompt = std::string(Trim(vlm_.system_prompt));
      return MakeVlmCaptioner(vlm_);
    }
    merge_.endpoint = endpoint_;
    merge_.model = model_;
    merge_.max_tokens = max_tokens_;
    merge_.temperature = temperature_;
    REEL_ASSIGN_OR_RETURN(merge_.template_text, ReadOptional(template_file_));
    return MakeMergeCaptioner(merge_);
  }

  std::string db_;
  std::string backend_;
  bool json_ = false;
  CaptionRunOptions run_;
  bool skip_failed_ = false;
  int jobs_ = 1;
  int concurrency_ = 8;
  std::string model_;
  ChatEndpointParams endpoint_;
  std::string api_key_env_;
  std::string prompt_file_, system_prompt_file_, template_file_;
  int frames_ = 0;
  int max_tokens_ = 400;
  double temperature_ = 0.2;
  VlmParams vlm_;
  MergeParams merge_;
  ClipTaggerParams clip_;
  bool score_only_ = false;
  bool print_vocabulary_ = false;
  bool print_prompts_ = false;
};

}  // namespace

void RegisterCaptionCommands(std::vector<CommandInfo>* out) {
  out->push_back(
      {"caption", "write captions for clips with one backend, resumably",
       "caption --db CATALOG --backend signals|original|clip|vlm|merge [--subset NAME] [options]",
       "Backends:\n"
       "  signals   a sentence from the clip signals `reel curate scan` stored; no model\n"
       "  original  the text that came with the video: sidecar name.json/.txt/.srt (cues\n"
       "            overlapping the clip) read at ingest, then container title/description\n"
       "  clip      zero-shot tags from a vocabulary ranked by CLIP, folded into a caption;\n"
       "            also stores CLIP's text-clip matching score (clip_match, as Open-Sora:\n"
       "            logit scale x cosine with the middle frame) for every caption of the\n"
       "            clip, and with --aesthetic the LAION aesthetic score (clips.aesthetic)\n"
       "  vlm       an OpenAI-compatible /v1/chat/completions server (vLLM, llama.cpp,\n"
       "            Ollama, hosted APIs) sent N evenly spaced JPEG frames and a prompt\n"
       "  merge     the clip's vlm, clip, signals and original captions folded into one\n"
       "            ('merged') by a template, or rewritten by an LLM (--rewrite)\n"
       "\n"
       "Every caption records its backend, model, prompt, parameters, run and time. A clip\n"
       "already captioned by the same backend and model is skipped (--redo replaces);\n"
       "a clip that fails is recorded in caption_errors with the cause and tried again by\n"
       "the next run. Ctrl-C stops after committing what is done.\n"
       "\n"
       "Retries (vlm, merge --rewrite): refused connections, timeouts, HTTP 408, 409, 429\n"
       "and 5xx and malformed replies are retried up to --retries times, waiting the\n"
       "server's Retry-After or --retry-wait doubled each time (capped by\n"
       "--max-retry-wait); other HTTP errors fail the clip at once.\n"
       "\n"
       "Which caption is used: commands that consume captions (curate export, eval,\n"
       "generate) take --prefer SOURCES, default vlm,merged,clip,signals,original: the\n"
       "clip's newest caption from the first source it has (an entry may name a model,\n"
       "as vlm:MODEL).",
       [] { return std::make_unique<CaptionCommand>(); }});
}

}  // namespace reel::cli
