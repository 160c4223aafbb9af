#include "caption/signals_caption.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "caption/template.h"
#include "util/strings.h"

namespace reel {
namespace {

struct ColorShare {
  std::string name;
  double fraction = 0;
};

std::vector<ColorShare> Colors(const ClipSignals& s) {
  std::vector<ColorShare> out;
  for (const Json& c : s.dominant_colors.as_array()) {
    const Json* name = c.Find("name");
    const Json* fraction = c.Find("fraction");
    if (name == nullptr || fraction == nullptr || !name->is_string()) continue;
    out.push_back({name->as_string(), fraction->as_double()});
  }
  return out;
}

double Share(const std::vector<ColorShare>& colors, std::initializer_list<const char*> names) {
  double total = 0;
  for (const ColorShare& c : colors) {
    for (const char* n : names) {
      if (c.name == n) total += c.fraction;
    }
  }
  return total;
}

std::string DurationWords(Rational duration) {
  if (!duration.valid() || duration <= Rational()) return "";
  const double sec = duration.ToDouble();
  if (sec < 0.95) return "sub-second";
  if (sec < 59.5) return std::to_string(static_cast<int>(std::lround(sec))) + "-second";
  const long minutes = std::lround(sec / 60.0);
  return std::to_string(minutes) + "-minute";
}

}  // namespace

std::string SignalsSentence(const ClipSignals& s, Rational duration) {
  std::vector<std::string> adjectives;  // before "shot"
  std::vector<std::string> clauses;     // after the semicolon

  const std::vector<ColorShare> colors = Colors(s);
  const bool mostly_black = s.black_ratio.has_value() && *s.black_ratio >= 0.5;

  if (s.brightness.has_value() && !mostly_black) {
    const double b = *s.brightness;
    if (b < 0.15) {
      adjectives.push_back("very dark");
    } else if (b < 0.3) {
      adjectives.push_back("dark");
    } else if (b < 0.42) {
      adjectives.push_back("dim");
    } else if (b >= 0.62) {
      adjectives.push_back("bright");
    }
  }
  if (s.motion.has_value() || s.static_ratio.has_value()) {
    const double m = s.motion.value_or(0.0);
    const bool still =
        (s.motion.has_value() && m < 0.1) || (s.static_ratio.has_value() && *s.static_ratio >= 0.9);
    const bool static_camera = s.camera_motion == "static" || s.camera_motion.empty();
    adjectives.push_back(still      ? (static_camera ? "static" : "still")
                         : m < 0.75 ? "slow"
                         : m < 2.5  ? "lively"
                                    : "fast-moving");
  }
  const std::string length = DurationWords(duration);
  if (s.sharpness.has_value()) {
    if (*s.sharpness < 80) {
      adjectives.push_back("blurry");
    } else if (*s.sharpness < 300) {
      adjectives.push_back("soft-focus");
    }
  }

  std::string head;
  for (size_t i = 0; i < adjectives.size(); ++i) {
    // Coordinate adjectives: "bright, slow, blurry 4-second shot".
    head += (i == 0 ? "" : ", ") + adjectives[i];
  }
  if (!length.empty()) head += (head.empty() ? "" : " ") + length;
  head += head.empty() ? "shot" : " shot";
  // "an" before a vowel sound: "an 8-second", "an 11-second", "an 18-second".
  const char first = head[0];
  const bool vowel = first == 'a' || first == 'e' || first == 'i' || first == 'o' || first == 'u' ||
                     first == '8' || StartsWith(head, "11-") || StartsWith(head, "18-");
  head = std::string(vowel ? "an " : "a ") + head;

  // Light and time-of-day cues.
  if (s.brightness.has_value() && !mostly_black) {
    const double b = *s.brightness;
    if (b < 0.25 && s.black_ratio.value_or(0.0) < 0.2) {
      head += " in low light, possibly at night";
    } else if (b >= 0.3 && b <= 0.8 && Share(colors, {"orange", "yellow", "brown"}) >= 0.35) {
      head += " in warm light";
    } else if (b >= 0.45 && Share(colors, {"blue", "cyan"}) >= 0.4) {
      head += " in cool light";
    }
  }
  if (s.text_area.has_value() && *s.text_area >= 0.15) head += " with on-screen text";

  if (!s.camera_motion.empty()) {
    const std::string& c = s.camera_motion;
    if (c == "static") {
      // "A static shot" already says it.
      const bool said = !adjectives.empty() && std::find(adjectives.begin(), adjectives.end(),
                                                         "static") != adjectives.end();
      if (!said) clauses.push_back("the camera is still");
    } else if (c == "pan_left" || c == "pan_right") {
      clauses.push_back(std::string("the camera pans ") + (c == "pan_left" ? "left" : "right"));
    } else if (c == "tilt_up" || c == "tilt_down") {
      clauses.push_back(std::string("the camera tilts ") + (c == "tilt_up" ? "up" : "down"));
    } else if (c == "zoom_in" || c == "zoom_out") {
      clauses.push_back(std::string("the camera zooms ") + (c == "zoom_in" ? "in" : "out"));
    } else if (c == "shaky") {
      clauses.push_back("the camera is handheld and shaky");
    }
  }

  if (mostly_black) {
    clauses.push_back("mostly black frames");
  } else {
    std::vector<std::string> names;
    for (const ColorShare& c : colors) {
      if (c.fraction >= 0.15 && names.size() < 2) names.push_back(c.name);
    }
    if (!colors.empty() && colors[0].fraction >= 0.6)
      names.resize(std::min<size_t>(names.size(), 1));
    std::string palette;
    if (!names.empty()) palette = "mostly " + Join(names, " and ");
    if (s.colorfulness.has_value()) {
      if (*s.colorfulness < 8) {
        palette = palette.empty() ? "nearly monochrome" : "nearly monochrome, " + palette;
      } else if (*s.colorfulness > 70) {
        palette = palette.empty() ? "vivid colours" : palette + " in vivid colours";
      }
    }
    if (!palette.empty()) clauses.push_back(palette);
  }

  std::string sentence = head;
  for (const std::string& c : clauses) sentence += "; " + c;
  return AsSentence(sentence);
}

}  // namespace reel
