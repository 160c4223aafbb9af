// Caption templates: how captioners fold pieces of text into one caption.
//
//   "{name}"           the value of `name`
//   "{name|sentence}"  the value with its first letter capitalised and a full stop at the
//                      end unless it ends in . ! ? or a quote
//   "{name|lower}"     the value lower-cased (ASCII)
//   "[ ... ]"          an optional group: dropped when any placeholder inside is empty;
//                      groups nest
//   "{{" "}}" "[[" "]]"  literal braces and brackets
// After substitution, runs of whitespace collapse to one space, spaces before , ; . are
// removed, and the result is trimmed.
//
// Parse() checks the syntax and that every name is one of `names`, so a typo in a
// user's template fails before any clip is processed, with the offset of the problem.
//
// Thread-safety: Render() is const and may run concurrently.

#ifndef REEL_CAPTION_TEMPLATE_H_
#define REEL_CAPTION_TEMPLATE_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace reel {

class CaptionTemplate {
 public:
  static Result<CaptionTemplate> Parse(std::string_view text,
                                       const std::vector<std::string>& names);

  std::string Render(const std::map<std::string, std::string>& values) const;
  // The names the template uses.
  std::vector<std::string> used_names() const;
  const std::string& text() const { return text_; }

  struct Node {
    enum class Kind { kText, kValue, kGroup } kind = Kind::kText;
    std::string text;            // kText: literal; kValue: the name
    std::string filter;          // kValue: "", "sentence" or "lower"
    std::vector<Node> children;  // kGroup
  };

 private:
  std::string text_;
  std::vector<Node> nodes_;
};

// Capitalises the first letter and ends with a full stop (the "sentence" filter).
std::string AsSentence(std::string_view text);
// Collapses whitespace, removes spaces before , ; : . and trims.
std::string TidyText(std::string_view text);

}  // namespace reel

#endif  // REEL_CAPTION_TEMPLATE_H_
