// The tag vocabulary of the "clip" captioner: categories of labels that CLIP ranks
// zero-shot, and the template that folds the chosen labels into a caption. The format
// is documented at the top of caption/clip_vocabulary.txt (the built-in vocabulary).
//
// Thread-safety: a parsed vocabulary is immutable.

#ifndef REEL_CAPTION_TAG_VOCABULARY_H_
#define REEL_CAPTION_TAG_VOCABULARY_H_

#include <string>
#include <string_view>
#include <vector>

#include "caption/template.h"
#include "util/status.h"

namespace reel {

struct TagCategory {
  std::string name;
  std::string prompt = "{}";
  int pick = 1;
  double min_prob = 0.0;
  std::vector<std::string> labels;
  // The prompt with `label` in place of {}.
  std::string PromptFor(const std::string& label) const;
};

struct TagVocabulary {
  std::vector<TagCategory> categories;
  CaptionTemplate caption;
  std::string sha256;  // of the file's text

  // `source` names the file in errors ("vocabulary.txt, line 12: ...").
  static Result<TagVocabulary> Parse(std::string_view text, const std::string& source);
};

}  // namespace reel

#endif  // REEL_CAPTION_TAG_VOCABULARY_H_
