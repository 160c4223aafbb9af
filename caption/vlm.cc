// The server-backed backends: "vlm" (a vision-language model over chat completions) and
// "merge" (template or LLM rewrite of a clip's captions).

#include <cstdio>

#include "caption/captioner.h"
#include "caption/chat_client.h"
#include "caption/frames.h"
#include "caption/template.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {

const char* const kDefaultVlmPrompt =
    "These {frames} images are frames sampled evenly, in order, from one {duration}-second "
    "video clip. Describe the clip as a single detailed paragraph for training a "
    "text-to-video model: the main subjects and what they do, the setting, the lighting and "
    "colours, the camera's movement and framing, and the visual style. Describe what is "
    "seen, in the present tense; do not mention frames, images or this instruction."
    "[ Its original title or description, which may be inaccurate, is: \"{original}\".]";

const char* const kDefaultMergeTemplate =
    "[{vlm|sentence}][ {clip|sentence}][ {signals|sentence}]"
    "[ Original description: {original|sentence}]";

const char* const kDefaultRewritePrompt =
    "Rewrite the descriptions of one video clip below into a single detailed caption for "
    "training a text-to-video model: one paragraph in the present tense that keeps every "
    "concrete visual detail (subjects, actions, setting, colours, lighting, camera movement, "
    "style), prefers the detailed description where the sources disagree, invents nothing "
    "and does not mention the sources. Reply with the caption only."
    "[ Detailed description: {vlm}][ Visual tags: {clip}][ Measured properties: {signals}]"
    "[ Original title or description: {original}]";

namespace {

std::string Seconds1(Rational r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", r.valid() ? r.ToDouble() : 0.0);
  return buf;
}

std::string TextOf(const CaptionRecord* c) {
  return c == nullptr ? std::string() : c->text;
}

Json EndpointJson(const ChatEndpointParams& e) {
  Json j = Json::MakeObject();
  j["url"] = RedactUrl(ChatCompletionsUrl(e.url));
  j["timeout_seconds"] = e.timeout_seconds;
  j["retries"] = e.retries;
  return j;  // never the key
}

Status CheckEndpoint(const ChatEndpointParams& e, const std::string& model, const char* what) {
  if (model.empty()) {
    return Status::InvalidArgument(std::string(what) +
                                   " needs --model: the model name the server serves");
  }
  if (!StartsWith(e.url, "http://") && !StartsWith(e.url, "https://")) {
    return Status::InvalidArgument("endpoint '" + RedactUrl(e.url) +
                                   "' is not an http:// or https:// URL");
  }
  return Status::OK();
}

// Sends `request`; on success fills the caption, prompt and reply details of *out, on
// failure *failure. Returns whether it succeeded.
bool Ask(const ChatEndpointParams& endpoint, const ChatRequest& request,
         const std::atomic<bool>* cancel, CaptionFailure* failure, CaptionOutput* out) {
  int attempts = 0;
  Result<ChatReply> reply = SendChat(endpoint, request, cancel, &attempts);
  if (!reply.ok()) {
    failure->status = reply.status();
    failure->attempts = attempts;
    return false;
  }
  out->text = TidyText(reply->content);
  out->prompt = request.text;
  out->attempts = reply->attempts;
  out->params["endpoint"] = RedactUrl(ChatCompletionsUrl(endpoint.url));
  out->params["max_tokens"] = request.max_tokens;
  out->params["temperature"] = request.temperature;
  out->params["finish_reason"] = reply->finish_reason;
  if (!reply->model.empty()) out->params["server_model"] = reply->model;
  if (!reply->usage.is_null()) out->params["usage"] = reply->usage;
  out->params["seconds"] = reply->seconds;
  return true;
}

class VlmCaptioner : public Captioner {
 public:
  VlmCaptioner(VlmParams p, CaptionTemplate prompt)
      : p_(std::move(p)), prompt_(std::move(prompt)) {}

  std::string source() const override { return "vlm"; }
  std::string model() const override { return p_.model; }
  bool needs_frames() const override { return true; }

  Json config() const override {
    Json j = Json::MakeObject();
    j["endpoint"] = EndpointJson(p_.endpoint);
    j["prompt_template"] = prompt_.text();
    j["system_prompt"] = p_.system_prompt;
    j["frames"] = p_.frames;
    j["max_side"] = p_.max_side;
    j["max_tokens"] = p_.max_tokens;
    j["temperature"] = p_.temperature;
    return j;
  }

  std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure* failure,
                                       const std::atomic<bool>* cancel) override {
    Result<std::vector<Frame>> frames = SampleClipFrames(in, EvenPoints(p_.frames), p_.max_side);
    if (!frames.ok()) {
      failure->status = frames.status();
      failure->attempts = 0;
      return std::nullopt;
    }
    ChatRequest request;
    request.model = p_.model;
    request.system = p_.system_prompt;
    request.max_tokens = p_.max_tokens;
    request.temperature = p_.temperature;
    for (const Frame& f : *frames) {
      Result<std::string> jpeg = EncodeJpeg(f, p_.jpeg_quality);
      if (!jpeg.ok()) {
        failure->status = jpeg.status();
        failure->attempts = 0;
        return std::nullopt;
      }
      request.image_urls.push_back(JpegDataUri(*jpeg));
    }
    request.text = prompt_.Render({{"frames", std::to_string(frames->size())},
                                   {"duration", Seconds1(in.clip.end_time - in.clip.start_time)},
                                   {"original", TextOf(in.Newest("original"))},
                                   {"tags", TextOf(in.Newest("clip"))},
                                   {"signals", TextOf(in.Newest("signals"))}});
    CaptionOutput out;
    if (!Ask(p_.endpoint, request, cancel, failure, &out)) return std::nullopt;
    out.params["frames"] = static_cast<int64_t>(frames->size());
    out.params["frame_width"] = (*frames)[0].width;
    out.params["frame_height"] = (*frames)[0].height;
    if (!p_.system_prompt.empty()) out.params["system_prompt"] = p_.system_prompt;
    return out;
  }

 private:
  VlmParams p_;
  CaptionTemplate prompt_;
};

const char* const kMergeSources[] = {"vlm", "clip", "signals", "original"};

class MergeCaptioner : public Captioner {
 public:
  MergeCaptioner(MergeParams p, CaptionTemplate tmpl, std::string model)
      : p_(std::move(p)), template_(std::move(tmpl)), model_(std::move(model)) {}

  std::string source() const override { return "merged"; }
  std::string model() const override { return model_; }

  Json config() const override {
    Json j = Json::MakeObject();
    j["template"] = template_.text();
    j["rewrite"] = p_.rewrite;
    if (p_.rewrite) {
      j["endpoint"] = EndpointJson(p_.endpoint);
      j["max_tokens"] = p_.max_tokens;
      j["temperature"] = p_.temperature;
    }
    return j;
  }

  // Merged again when the captions it was made from changed.
  bool NeedsWork(const ClipInput& in) const override {
    const Json inputs = Inputs(in);
    if (inputs.size() == 0) return false;
    for (const CaptionRecord& c : in.captions) {
      if (c.source == source() && c.model == model()) {
        const Json* had = c.params.Find("inputs");
        return had == nullptr || *had != inputs;
      }
    }
    return true;
  }

  std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure* failure,
                                       const std::atomic<bool>* cancel) override {
    std::map<std::string, std::string> values;
    for (const char* s : kMergeSources) values[s] = TextOf(in.Newest(s));
    CaptionOutput out;
    out.params["inputs"] = Inputs(in);
    const std::string merged = template_.Render(values);
    if (merged.empty()) {
      failure->status = Status::FailedPrecondition("clip " + std::to_string(in.clip.id) +
                                                   ": the template used none of its captions");
      failure->attempts = 0;
      return std::nullopt;
    }
    if (!p_.rewrite) {
      out.text = merged;
      return out;
    }
    ChatRequest request;
    request.model = p_.model;
    request.text = merged;
    request.max_tokens = p_.max_tokens;
    request.temperature = p_.temperature;
    if (!Ask(p_.endpoint, request, cancel, failure, &out)) return std::nullopt;
    return out;
  }

 private:
  // {"vlm": id, ...}: the captions used, by the names the template uses.
  Json Inputs(const ClipInput& in) const {
    Json j = Json::MakeObject();
    for (const std::string& name : template_.used_names()) {
      if (const CaptionRecord* c = in.Newest(name); c != nullptr) j[name] = c->id;
    }
    return j;
  }

  MergeParams p_;
  CaptionTemplate template_;
  std::string model_;
};

const std::vector<std::string> kVlmNames = {"frames", "duration", "original", "tags", "signals"};
const std::vector<std::string> kMergeNames = {"vlm", "clip", "signals", "original"};

}  // namespace

Result<std::unique_ptr<Captioner>> MakeVlmCaptioner(const VlmParams& params) {
  REEL_RETURN_IF_ERROR(CheckEndpoint(params.endpoint, params.model, "the vlm backend"));
  if (params.frames < 1 || params.frames > 64) {
    return Status::InvalidArgument("--frames must be between 1 and 64");
  }
  Result<CaptionTemplate> prompt = CaptionTemplate::Parse(
      params.prompt_template.empty() ? kDefaultVlmPrompt : params.prompt_template, kVlmNames);
  if (!prompt.ok()) return prompt.status().WithContext("the VLM prompt");
  return std::unique_ptr<Captioner>(new VlmCaptioner(params, std::move(*prompt)));
}

Result<std::unique_ptr<Captioner>> MakeMergeCaptioner(const MergeParams& params) {
  std::string text = params.template_text;
  if (text.empty()) text = params.rewrite ? kDefaultRewritePrompt : kDefaultMergeTemplate;
  Result<CaptionTemplate> tmpl = CaptionTemplate::Parse(text, kMergeNames);
  if (!tmpl.ok())
    return tmpl.status().WithContext(params.rewrite ? "the rewrite prompt" : "the merge template");
  std::string model;
  if (params.rewrite) {
    REEL_RETURN_IF_ERROR(CheckEndpoint(params.endpoint, params.model, "merge --rewrite"));
    model = params.model;
  } else {
    // Captions made by different templates are kept apart.
    model = "template-" + Sha256Hex(text).substr(0, 8);
  }
  return std::unique_ptr<Captioner>(new MergeCaptioner(params, std::move(*tmpl), model));
}

}  // namespace reel
