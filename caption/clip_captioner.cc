// The "clip" backend: CLIP zero-shot tags, matching scores and aesthetic scores.

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <numeric>

#include "caption/captioner.h"
#include "caption/frames.h"
#include "caption/tag_vocabulary.h"
#include "caption/template.h"
#include "nets/aesthetic.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "nets/models.h"
#include "nets/torch_compat.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {
namespace {

constexpr const char* kMatchScore = "clip_match";

// The loaded pieces, shared by every worker.
struct ClipParts {
  std::unique_ptr<ClipModel> model;
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::unique_ptr<AestheticPredictor> aesthetic;
  TagVocabulary vocabulary;
  std::vector<torch::Tensor> label_features;  // per category: [labels, D], normalised
};

torch::Tensor Normalize(const torch::Tensor& x) {
  return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12);
}

class ClipCaptioner : public Captioner {
 public:
  ClipCaptioner(ClipTaggerParams p, std::string model_name, ClipParts parts)
      : p_(std::move(p)), model_name_(std::move(model_name)), parts_(std::move(parts)) {}

  std::string source() const override { return "clip"; }
  std::string model() const override { return model_name_; }

  Json config() const override {
    Json j = Json::MakeObject();
    j["clip_model"] = p_.model;
    j["clip_config"] = parts_.model->config().ToString();
    j["vocabulary_sha256"] = parts_.vocabulary.sha256;
    j["aesthetic"] = p_.aesthetic;
    j["device"] = p_.device;
    j["frames"] = p_.frames;
    j["tags"] = p_.tags;
    return j;
  }

  // Work remains when the clip lacks our tags, a caption lacks our matching score, or the
  // aesthetic score is missing.
  bool NeedsWork(const ClipInput& in) const override {
    if (p_.tags && Captioner::NeedsWork(in)) return true;
    for (const CaptionRecord& c : in.captions) {
      bool scored = false;
      for (const CaptionScore& s : in.scores) {
        scored =
            scored || (s.caption_id == c.id && s.name == kMatchScore && s.model == model_name_);
      }
      if (!scored) return true;
    }
    return parts_.aesthetic != nullptr && !in.clip.aesthetic.has_value();
  }

  std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure* failure,
                                       const std::atomic<bool>*) override {
    failure->attempts = 0;
    const std::vector<double> points = OpenSoraPoints(p_.frames);
    Result<std::vector<Frame>> frames = SampleClipFrames(in, points, 0);
    if (!frames.ok()) {
      failure->status = frames.status();
      return std::nullopt;
    }
    const int res = parts_.model->config().image_resolution;
    std::vector<torch::Tensor> images;
    for (const Frame& f : *frames)
      images.push_back(PreprocessImage(f.data.data(), f.width, f.height, res));
    // The frame nearest the middle gives the matching score (Open-Sora scores the middle).
    size_t middle = 0;
    for (size_t i = 1; i < points.size(); ++i) {
      if (std::abs(points[i] - 0.5) < std::abs(points[middle] - 0.5)) middle = i;
    }

    // Tag unless our tags exist already (then only missing scores are the work).
    bool have_tags = false;
    for (const CaptionRecord& c : in.captions) {
      have_tags = have_tags || (c.source == source() && c.model == model_name_);
    }
    const bool do_tags = p_.tags && (in.redo || !have_tags);
    // Texts to score: every caption of the clip, then (after tagging) the new one.
    std::vector<std::pair<int64_t, std::string>> texts;
    for (const CaptionRecord& c : in.captions) {
      if (c.source == source() && c.model == model_name_ && do_tags) continue;  // replaced
      texts.emplace_back(c.id, c.text);
    }

    CaptionOutput out;
    try {
      std::lock_guard<std::mutex> lock(mu_);  // one forward at a time; torch threads inside
      compat::InferenceGuard guard;
      const torch::Device device = parts_.model->device();
      torch::Tensor feats =
          Normalize(parts_.model->EncodeImage(torch::stack(images).to(device)).to(torch::kFloat));
      if (do_tags) {
        const torch::Tensor clip_feat = Normalize(feats.mean(0, /*keepdim=*/true));
        std::map<std::string, std::string> chosen;
        Json tags = Json::MakeObject();
        const double scale = parts_.model->logit_scale();
        for (size_t k = 0; k < parts_.vocabulary.categories.size(); ++k) {
          const TagCategory& cat = parts_.vocabulary.categories[k];
          const torch::Tensor probs =
              torch::softmax(scale * clip_feat.matmul(parts_.label_features[k].t()), -1)[0].cpu();
          std::vector<int64_t> order(cat.labels.size());
          std::iota(order.begin(), order.end(), 0);
          const float* pr = probs.data_ptr<float>();
          std::stable_sort(order.begin(), order.end(),
                           [&](int64_t a, int64_t b) { return pr[a] > pr[b]; });
          std::vector<std::string> picked;
          Json ranked = Json::MakeArray();
          for (size_t r = 0; r < order.size() && r < 3; ++r) {
            Json e = Json::MakeArray();
            e.push_back(cat.labels[order[r]]);
            e.push_back(static_cast<double>(pr[order[r]]));
            ranked.push_back(e);
          }
          for (int64_t idx : order) {
            if (static_cast<int>(picked.size()) >= cat.pick || pr[idx] < cat.min_prob) break;
            picked.push_back(cat.labels[idx]);
          }
          chosen[cat.name] = Join(picked, " and ");
          tags[cat.name] = ranked;
        }
        out.text = AsSentence(parts_.vocabulary.caption.Render(chosen));
        out.params["tags"] = tags;
        out.params["vocabulary_sha256"] = parts_.vocabulary.sha256;
        out.params["frames"] = static_cast<int64_t>(frames->size());
        texts.emplace_back(0, out.text);
      }
      if (!texts.empty()) {
        std::vector<int64_t> tokens;
        for (const auto& [id, text] : texts) {
          Result<std::vector<int>> t = parts_.tokenizer->Tokenize(
              text, parts_.model->config().context_length, /*truncate=*/true);
          if (!t.ok()) {
            failure->status = t.status();
            return std::nullopt;
          }
          tokens.insert(tokens.end(), t->begin(), t->end());
        }
        const torch::Tensor token_tensor =
            torch::tensor(tokens, torch::kLong)
                .view({static_cast<int64_t>(texts.size()), parts_.model->config().context_length})
                .to(device);
        const torch::Tensor text_feats =
            Normalize(parts_.model->EncodeText(token_tensor).to(torch::kFloat));
        const torch::Tensor scores =
            (parts_.model->logit_scale() * text_feats.matmul(feats[static_cast<int64_t>(middle)]))
                .to(torch::kDouble)
                .cpu();
        out.score_name = kMatchScore;
        out.score_model = model_name_;
        for (size_t i = 0; i < texts.size(); ++i) {
          out.scores.emplace_back(texts[i].first, scores[static_cast<int64_t>(i)].item<double>());
        }
      }
      if (parts_.aesthetic != nullptr) {
        out.aesthetic = parts_.aesthetic->Predict(feats).mean().item<double>();
      }
    } catch (const c10::Error& e) {
      failure->status = Status::Internal(std::string("CLIP: ") + e.what_without_backtrace());
      return std::nullopt;
    }
    return out;
  }

 private:
  ClipTaggerParams p_;
  std::string model_name_;
  ClipParts parts_;
  std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<Captioner>> MakeClipCaptioner(const ClipTaggerParams& params) {
  if (params.frames < 1 || params.frames > 32) {
    return Status::InvalidArgument("--frames must be between 1 and 32");
  }
  ClipLoadOptions load;
  if (params.device == "cuda") {
    if (!compat::CudaAvailable()) {
      return Status::FailedPrecondition("--device cuda: this build or machine has no CUDA");
    }
    load = ClipLoadOptions::ForDevice(torch::Device(torch::kCUDA));
  } else if (params.device != "cpu") {
    return Status::InvalidArgument("--device must be cpu or cuda, not '" + params.device + "'");
  }
  ClipParts parts;
  REEL_ASSIGN_OR_RETURN(std::string model_path, ResolveModel(params.model));
  std::string vocab_path = params.vocab;
  if (vocab_path.empty()) {
    REEL_ASSIGN_OR_RETURN(vocab_path, InstalledModelPath("clip-vocab"));
  }
  const std::string vocab_text_source = params.vocabulary_file.empty()
                                            ? std::string("the built-in vocabulary")
                                            : params.vocabulary_file;
  std::string vocab_text = DefaultClipVocabulary();
  if (!params.vocabulary_file.empty()) {
    REEL_ASSIGN_OR_RETURN(vocab_text, ReadTextFile(params.vocabulary_file));
  }
  REEL_ASSIGN_OR_RETURN(parts.vocabulary, TagVocabulary::Parse(vocab_text, vocab_text_source));
  REEL_ASSIGN_OR_RETURN(parts.tokenizer, ClipTokenizer::Load(vocab_path));
  REEL_ASSIGN_OR_RETURN(parts.model, ClipModel::Load(model_path, load));
  if (!params.aesthetic.empty()) {
    REEL_ASSIGN_OR_RETURN(std::string aes_path, ResolveModel(params.aesthetic));
    REEL_ASSIGN_OR_RETURN(parts.aesthetic, AestheticPredictor::Load(aes_path, load.device));
    if (parts.aesthetic->input_dim() != parts.model->config().embed_dim) {
      return Status::InvalidArgument("the aesthetic predictor " + aes_path + " expects " +
                                     std::to_string(parts.aesthetic->input_dim()) +
                                     "-value CLIP embeddings, but " + params.model + " gives " +
                                     std::to_string(parts.model->config().embed_dim) +
                                     " (LAION's predictor needs --clip-model clip-vit-l-14)");
    }
  }
  // Label features, once.
  try {
    compat::InferenceGuard guard;
    const int ctx = parts.model->config().context_length;
    for (const TagCategory& cat : parts.vocabulary.categories) {
      std::vector<int64_t> tokens;
      for (const std::string& label : cat.labels) {
        REEL_ASSIGN_OR_RETURN(std::vector<int> t,
                              parts.tokenizer->Tokenize(cat.PromptFor(label), ctx, true));
        tokens.insert(tokens.end(), t.begin(), t.end());
      }
      const torch::Tensor tt = torch::tensor(tokens, torch::kLong)
                                   .view({static_cast<int64_t>(cat.labels.size()), ctx})
                                   .to(load.device);
      parts.label_features.push_back(Normalize(parts.model->EncodeText(tt).to(torch::kFloat)));
    }
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("CLIP: ") + e.what_without_backtrace());
  }
  // The model as stored with captions: the registry name, or the file's name.
  std::string name = params.model;
  if (!FindModelSpec(name).ok()) name = std::filesystem::path(name).filename().string();
  return std::unique_ptr<Captioner>(new ClipCaptioner(params, name, std::move(parts)));
}

}  // namespace reel
