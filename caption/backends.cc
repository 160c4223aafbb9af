// The model-free backends: "signals" and "original".

#include <algorithm>

#include "caption/captioner.h"
#include "caption/signals_caption.h"
#include "caption/template.h"
#include "util/strings.h"

namespace reel {
namespace {

bool HasAnySignal(const ClipSignals& s) {
  return s.motion.has_value() || s.static_ratio.has_value() || !s.camera_motion.empty() ||
         s.sharpness.has_value() || s.brightness.has_value() || s.colorfulness.has_value() ||
         s.dominant_colors.size() > 0;
}

class SignalsCaptioner : public Captioner {
 public:
  std::string source() const override { return "signals"; }
  std::string model() const override { return kSignalsCaptionModel; }

  bool NeedsWork(const ClipInput& in) const override {
    for (const CaptionRecord& c : in.captions) {
      if (c.source == source() && c.model == model()) return c.text != Sentence(in);
    }
    return true;
  }

  std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure* failure,
                                       const std::atomic<bool>*) override {
    if (!HasAnySignal(in.clip.signals)) {
      failure->status = Status::FailedPrecondition(
          "clip " + std::to_string(in.clip.id) +
          " has no stored signals; run `reel curate scan` (with the motion, quality and colour "
          "signal groups) first");
      return std::nullopt;
    }
    CaptionOutput out;
    out.text = Sentence(in);
    return out;
  }

 private:
  static std::string Sentence(const ClipInput& in) {
    return SignalsSentence(in.clip.signals, in.clip.end_time - in.clip.start_time);
  }
};

// The text chosen for a clip, and where it came from.
struct OriginalText {
  std::string text;
  std::string from;  // "json:caption", "txt", "srt", "tag:title", ...
  std::string file;
};

std::string TagValue(const VideoRecord& v, const char* key) {
  for (const auto& [k, value] : v.metadata) {
    if (ToLower(k) == key) return std::string(Trim(value));
  }
  return "";
}

OriginalText ChooseOriginal(const ClipInput& in) {
  auto json_field = [&](std::initializer_list<const char*> fields) -> OriginalText {
    for (const char* f : fields) {
      for (const VideoText& t : in.texts) {
        if (t.origin == "json" && t.field == f && !t.text.empty()) {
          return {t.text, std::string("json:") + f, t.file};
        }
      }
    }
    return {};
  };
  if (OriginalText o = json_field({"caption", "text"}); !o.text.empty()) return o;
  for (const VideoText& t : in.texts) {
    if (t.origin == "txt" && !t.text.empty()) return {t.text, "txt", t.file};
  }
  // Subtitle cues that overlap the clip, in order.
  std::string cues, file;
  for (const VideoText& t : in.texts) {
    if (t.origin != "srt" || !t.start_time.has_value() || !t.end_time.has_value()) continue;
    if (*t.start_time<in.clip.end_time&& * t.end_time> in.clip.start_time) {
      cues += (cues.empty() ? "" : " ") + t.text;
      file = t.file;
    }
  }
  if (!cues.empty()) return {cues, "srt", file};
  if (OriginalText o = json_field({"description", "summary", "title"}); !o.text.empty()) return o;
  for (const char* key : {"description", "comment", "synopsis", "title"}) {
    const std::string value = TagValue(in.video, key);
    if (!value.empty()) return {value, std::string("tag:") + key, in.video.path};
  }
  return {};
}

class OriginalCaptioner : public Captioner {
 public:
  std::string source() const override { return "original"; }
  std::string model() const override { return ""; }

  bool NeedsWork(const ClipInput& in) const override {
    for (const CaptionRecord& c : in.captions) {
      if (c.source == source() && c.model == model()) {
        const OriginalText o = ChooseOriginal(in);
        return !o.text.empty() && TidyText(o.text) != c.text;
      }
    }
    return true;
  }

  std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure*,
                                       const std::atomic<bool>*) override {
    const OriginalText o = ChooseOriginal(in);
    CaptionOutput out;
    if (o.text.empty()) return out;  // no text: counted, not a failure
    out.text = TidyText(o.text);
    out.params["from"] = o.from;
    out.params["file"] = o.file;
    return out;
  }
};

}  // namespace

std::unique_ptr<Captioner> MakeSignalsCaptioner() {
  return std::make_unique<SignalsCaptioner>();
}
std::unique_ptr<Captioner> MakeOriginalCaptioner() {
  return std::make_unique<OriginalCaptioner>();
}

}  // namespace reel
