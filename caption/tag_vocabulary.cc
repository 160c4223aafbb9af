#include "caption/tag_vocabulary.h"

#include <cstdlib>
#include <set>

#include "util/sha256.h"
#include "util/strings.h"

namespace reel {

std::string TagCategory::PromptFor(const std::string& label) const {
  const size_t at = prompt.find("{}");
  if (at == std::string::npos) return prompt + " " + label;
  return prompt.substr(0, at) + label + prompt.substr(at + 2);
}

Result<TagVocabulary> TagVocabulary::Parse(std::string_view text, const std::string& source) {
  std::vector<TagCategory> categories;
  std::string caption_text;
  int line_no = 0;
  auto error = [&](const std::string& what) {
    return Status::InvalidArgument(source + ", line " + std::to_string(line_no) + ": " + what);
  };
  auto setting = [](std::string_view line, std::string_view key, std::string* value) {
    if (!StartsWith(line, key) || line.size() <= key.size() || line[key.size()] != ':')
      return false;
    *value = std::string(Trim(line.substr(key.size() + 1)));
    return true;
  };
  std::set<std::string> names;
  for (const std::string& raw : Split(text, '\n')) {
    ++line_no;
    const std::string_view line = Trim(raw);
    if (line.empty() || line[0] == '#') continue;
    std::string value;
    if (line.front() == '[' && line.back() == ']') {
      TagCategory c;
      c.name = std::string(Trim(line.substr(1, line.size() - 2)));
      if (c.name.empty()) return error("empty category name");
      for (char ch : c.name) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_')) {
          return error("category names are letters, digits and '_': '" + c.name + "'");
        }
      }
      if (!names.insert(c.name).second) return error("category '" + c.name + "' defined twice");
      categories.push_back(std::move(c));
      continue;
    }
    if (categories.empty()) {
      if (setting(line, "caption", &value)) {
        caption_text = value;
        continue;
      }
      return error("expected 'caption: TEMPLATE' or a [category] before labels");
    }
    TagCategory& c = categories.back();
    if (setting(line, "prompt", &value)) {
      if (value.empty()) return error("empty prompt");
      c.prompt = value;
    } else if (setting(line, "pick", &value)) {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || n < 1 || n > 16) {
        return error("pick must be a whole number from 1 to 16");
      }
      c.pick = static_cast<int>(n);
    } else if (setting(line, "min_prob", &value)) {
      char* end = nullptr;
      const double p = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' || !(p >= 0.0 && p <= 1.0)) {
        return error("min_prob must be a number from 0 to 1");
      }
      c.min_prob = p;
    } else {
      c.labels.emplace_back(line);
    }
  }
  if (categories.empty()) return Status::InvalidArgument(source + ": no [category] sections");
  for (const TagCategory& c : categories) {
    if (c.labels.size() < 2) {
      return Status::InvalidArgument(source + ": category '" + c.name +
                                     "' needs at least two labels to rank");
    }
  }
  std::vector<std::string> category_names;
  for (const TagCategory& c : categories) category_names.push_back(c.name);
  if (caption_text.empty()) {
    // Default: every category, comma-separated, each optional.
    for (const std::string& n : category_names) {
      caption_text += caption_text.empty() ? "[{" + n + "}]" : "[, {" + n + "}]";
    }
  }
  Result<CaptionTemplate> tmpl = CaptionTemplate::Parse(caption_text, category_names);
  if (!tmpl.ok()) return tmpl.status().WithContext(source + ": the caption template");
  TagVocabulary v;
  v.categories = std::move(categories);
  v.caption = std::move(*tmpl);
  v.sha256 = Sha256Hex(text);
  return v;
}

}  // namespace reel
