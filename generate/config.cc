#include "generate/config.h"

#include <cmath>
#include <type_traits>

#include "util/strings.h"

namespace reel::gen {

std::string_view AttentionModeName(AttentionMode m) {
  switch (m) {
    case AttentionMode::kFull:
      return "full";
    case AttentionMode::kFactorized:
      return "factorized";
    case AttentionMode::kAuto:
      return "auto";
  }
  return "?";
}

std::vector<std::string> ModelConfig::Names() {
  return {"cpu-tiny", "cpu-small", "h100-b"};
}

Result<ModelConfig> ModelConfig::Named(std::string_view name) {
  ModelConfig c;
  c.name = std::string(name);
  if (name == "cpu-tiny") return c;
  if (name == "cpu-small") {
    c.clip = {17, 64, 64, 8};
    c.vae.base_channels = 24;
    c.text.vocab_size = 1024;
    c.text.max_tokens = 32;
    c.text.width = 96;
    c.dit.width = 192;
    c.dit.depth = 6;
    c.dit.heads = 6;
    return c;
  }
  if (name == "h100-b") {
    c.clip = {17, 256, 256, 8};
    c.vae.base_channels = 64;
    c.vae.channel_mult = {1, 2, 4, 4};
    c.vae.layers_per_level = 2;
    c.vae.latent_channels = 16;
    c.vae.norm_groups = 32;
    c.text.vocab_size = 8192;
    c.text.max_tokens = 64;
    c.text.width = 512;
    c.text.depth = 6;
    c.text.heads = 8;
    c.dit.width = 768;
    c.dit.depth = 12;
    c.dit.heads = 12;
    return c;
  }
  std::string names;
  for (const std::string& n : Names()) names += (names.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("unknown model configuration '" + std::string(name) +
                                 "' (known: " + names + ")");
}

std::string DescribeClipShape(const ClipShape& s) {
  return std::to_string(s.frames) + " frames " + std::to_string(s.width) + "x" +
         std::to_string(s.height) + " @ " + std::to_string(s.fps) + " fps";
}

Status OutOfRange(const std::string& what, double value, const std::string& range) {
  return Status::InvalidArgument(what + " " + FormatShortest(value) + ": must be " + range);
}

Status ModelConfig::Validate() const {
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("model configuration: " + what);
  };
  if (clip.frames < 1 || (clip.frames - 1) % 4 != 0) {
    return bad("clip.frames must be 1 + 4k (1, 5, 9, 13, 17, ...), not " +
               std::to_string(clip.frames));
  }
  if (dit.patch_size < 1) return bad("dit.patch_size must be at least 1");
  const int unit = 8 * dit.patch_size;
  if (clip.height < unit || clip.height % unit != 0 || clip.width < unit ||
      clip.width % unit != 0) {
    return bad("clip height and width must be positive multiples of " + std::to_string(unit) +
               " (8 x patch size), not " + std::to_string(clip.width) + "x" +
               std::to_string(clip.height));
  }
  if (clip.fps < 1) return bad("clip.fps must be positive");
  if (vae.channel_mult.size() != 4)
    return bad("vae.channel_mult must have 4 levels (8x space, 4x time)");
  for (int m : vae.channel_mult) {
    if (m < 1) return bad("vae.channel_mult entries must be positive");
    if ((vae.base_channels * m) % vae.norm_groups != 0) {
      return bad("vae channels (" + std::to_string(vae.base_channels * m) +
                 ") must be divisible by vae.norm_groups (" + std::to_string(vae.norm_groups) +
                 ")");
    }
  }
  if (vae.latent_channels < 1 || vae.layers_per_level < 1)
    return bad("vae latent_channels and layers_per_level must be positive");
  if (vae.kl_weight < 0) return bad("vae.kl_weight must be >= 0");
  if (vae.mse_weight < 0) return bad("vae.mse_weight must be >= 0");
  if (text.encoder.empty())
    return bad("text.encoder must be 'reel' or a CLIP model (clip-vit-b-32)");
  if (!frozen_text() && text.vocab_size < 260)
    return bad("text.vocab_size must be at least 260 (bytes and special tokens)");
  if (text.max_tokens < 2) return bad("text.max_tokens must be at least 2");
  if (frozen_text() && text.max_tokens > 77)
    return bad("text.max_tokens must be at most 77 (CLIP's context) with text.encoder " +
               text.encoder);
  if (text.width < 8 || text.heads < 1 || text.width % text.heads != 0 || text.depth < 1) {
    return bad("text.width must be a multiple of text.heads, depth >= 1");
  }
  if (dit.depth < 1 || dit.heads < 1 || dit.width % dit.heads != 0) {
    return bad("dit.width (" + std::to_string(dit.width) + ") must be a multiple of dit.heads (" +
               std::to_string(dit.heads) + ")");
  }
  const int head_dim = dit.width / dit.heads;
  // 3D rotary positions split the head dimension into time, height and width parts, each even.
  if (head_dim % 16 != 0) {
    return bad("dit head dimension (width / heads = " + std::to_string(head_dim) +
               ") must be a multiple of 16 for 3D rotary positions");
  }
  if (dit.mlp_ratio <= 0) return bad("dit.mlp_ratio must be positive");
  return Status::OK();
}

namespace {

// Every numeric field of a configuration with its JSON section and key, once: ToJson and
// FromJson both walk this list (`c` is a ModelConfig, const or not).
template <typename C, typename F>
void ForEachNumber(C& c, F&& f) {
  f("vae", "in_channels", c.vae.in_channels);
  f("vae", "base_channels", c.vae.base_channels);
  f("vae", "layers_per_level", c.vae.layers_per_level);
  f("vae", "latent_channels", c.vae.latent_channels);
  f("vae", "norm_groups", c.vae.norm_groups);
  f("vae", "mse_weight", c.vae.mse_weight);
  f("vae", "kl_weight", c.vae.kl_weight);
  f("text", "vocab_size", c.text.vocab_size);
  f("text", "max_tokens", c.text.max_tokens);
  f("text", "width", c.text.width);
  f("text", "depth", c.text.depth);
  f("text", "heads", c.text.heads);
  f("dit", "width", c.dit.width);
  f("dit", "depth", c.dit.depth);
  f("dit", "heads", c.dit.heads);
  f("dit", "patch_size", c.dit.patch_size);
  f("dit", "mlp_ratio", c.dit.mlp_ratio);
  f("dit", "full_attention_max_tokens", c.dit.full_attention_max_tokens);
  f("clip", "frames", c.clip.frames);
  f("clip", "height", c.clip.height);
  f("clip", "width", c.clip.width);
  f("clip", "fps", c.clip.fps);
}

}  // namespace

Json ModelConfig::ToJson() const {
  Json j = Json::MakeObject();
  j["name"] = name;
  for (const char* section : {"vae", "text", "dit", "clip"}) j[section] = Json::MakeObject();
  ForEachNumber(*this,
                [&](const char* section, const char* key, const auto& v) { j[section][key] = v; });
  Json mult = Json::MakeArray();
  for (int m : vae.channel_mult) mult.push_back(m);
  j["vae"]["channel_mult"] = mult;
  j["dit"]["attention"] = std::string(AttentionModeName(dit.attention));
  j["text"]["encoder"] = text.encoder;
  return j;
}

std::vector<std::string> ConfigDifferences(const ModelConfig& saved, const ModelConfig& given,
                                           const std::vector<std::string>& sections) {
  const Json a = saved.ToJson(), b = given.ToJson();
  std::vector<std::string> out;
  for (const std::string& section : sections) {
    const Json* sa = a.Find(section);
    const Json* sb = b.Find(section);
    if (sa == nullptr || sb == nullptr) continue;
    for (const auto& [key, value] : sa->as_object()) {
      if (section == "text" && saved.frozen_text() && key != "encoder") continue;
      const Json* other = sb->Find(key);
      if (other != nullptr && *other == value) continue;
      out.push_back(section + "." + key + " " + (other != nullptr ? ShowJson(*other) : "none") +
                    " (saved: " + ShowJson(value) + ")");
    }
  }
  return out;
}

Result<ModelConfig> ModelConfig::FromJson(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("model configuration: not a JSON object");
  ModelConfig c;
  // Start from the named configuration when there is one, so older files gain new fields.
  if (const Json* n = j.Find("name"); n != nullptr && n->is_string()) {
    auto named = Named(n->as_string());
    if (named.ok()) c = *named;
    c.name = n->as_string();
  }
  ForEachNumber(c, [&](const char* section, const char* key, auto& out) {
    const Json* o = j.Find(section);
    const Json* x = o != nullptr ? o->Find(key) : nullptr;
    if (x != nullptr && x->is_number())
      out = static_cast<std::remove_reference_t<decltype(out)>>(x->as_double());
  });
  if (const Json* v = j.Find("vae"); v != nullptr) {
    if (const Json* m = v->Find("channel_mult"); m != nullptr && m->is_array()) {
      c.vae.channel_mult.clear();
      for (const Json& x : m->as_array())
        c.vae.channel_mult.push_back(static_cast<int>(x.as_int()));
    }
  }
  if (const Json* t = j.Find("text"); t != nullptr) {
    if (const Json* e = t->Find("encoder"); e != nullptr && e->is_string())
      c.text.encoder = e->as_string();
  }
  if (const Json* d = j.Find("dit"); d != nullptr) {
    if (const Json* a = d->Find("attention"); a != nullptr && a->is_string()) {
      const std::string& s = a->as_string();
      if (s == "full")
        c.dit.attention = AttentionMode::kFull;
      else if (s == "factorized")
        c.dit.attention = AttentionMode::kFactorized;
      else if (s == "auto")
        c.dit.attention = AttentionMode::kAuto;
      else
        return Status::InvalidArgument(
            "model configuration: dit.attention must be full, factorized or auto, not '" + s + "'");
    }
  }
  REEL_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace reel::gen
