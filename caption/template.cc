#include "caption/template.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "util/strings.h"

namespace reel {
namespace {

using Node = CaptionTemplate::Node;

class Parser {
 public:
  Parser(std::string_view text, const std::vector<std::string>& names)
      : text_(text), names_(names.begin(), names.end()) {}

  Status Parse(std::vector<Node>* out) {
    REEL_RETURN_IF_ERROR(ParseSeq(out, 0));
    if (pos_ < text_.size()) return Error("unmatched ']'");
    return Status::OK();
  }

 private:
  Status Error(const std::string& what) const {
    return Status::InvalidArgument("template, at offset " + std::to_string(pos_) + ": " + what);
  }

  Status ParseSeq(std::vector<Node>* out, int depth) {
    std::string literal;
    auto flush = [&] {
      if (literal.empty()) return;
      Node n;
      n.kind = Node::Kind::kText;
      n.text = std::move(literal);
      literal.clear();
      out->push_back(std::move(n));
    };
    while (pos_ < text_.size()) {
      const char ch = text_[pos_];
      const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
      if ((ch == '{' || ch == '}' || ch == '[' || ch == ']') && next == ch) {
        literal += ch;
        pos_ += 2;
        continue;
      }
      if (ch == '}') return Error("unmatched '}' (write '}}' for a literal brace)");
      if (ch == ']') {
        if (depth == 0) return Error("unmatched ']' (write ']]' for a literal bracket)");
        break;
      }
      if (ch == '[') {
        flush();
        const size_t open = pos_++;
        Node g;
        g.kind = Node::Kind::kGroup;
        REEL_RETURN_IF_ERROR(ParseSeq(&g.children, depth + 1));
        if (pos_ >= text_.size() || text_[pos_] != ']') {
          pos_ = open;
          return Error("'[' without a closing ']'");
        }
        ++pos_;
        out->push_back(std::move(g));
        continue;
      }
      if (ch == '{') {
        flush();
        const size_t close = text_.find('}', pos_);
        if (close == std::string_view::npos) return Error("'{' without a closing '}'");
        std::string inner(Trim(text_.substr(pos_ + 1, close - pos_ - 1)));
        Node v;
        v.kind = Node::Kind::kValue;
        const size_t bar = inner.find('|');
        v.text = std::string(Trim(std::string_view(inner).substr(0, bar)));
        if (bar != std::string::npos)
          v.filter = std::string(Trim(std::string_view(inner).substr(bar + 1)));
        if (names_.count(v.text) == 0) {
          std::string known;
          for (const std::string& n : names_) known += (known.empty() ? "" : ", ") + n;
          return Error("unknown name '{" + v.text + "}' (known: " + known + ")");
        }
        if (!v.filter.empty() && v.filter != "sentence" && v.filter != "lower") {
          return Error("unknown filter '" + v.filter + "' (known: sentence, lower)");
        }
        pos_ = close + 1;
        out->push_back(std::move(v));
        continue;
      }
      literal += ch;
      ++pos_;
    }
    flush();
    return Status::OK();
  }

  std::string_view text_;
  std::set<std::string> names_;
  size_t pos_ = 0;
};

std::string ApplyFilter(const std::string& value, const std::string& filter) {
  if (filter == "sentence") return AsSentence(value);
  if (filter == "lower") return ToLower(value);
  return value;
}

// Renders `nodes`; false when a placeholder is empty (the enclosing group is dropped).
bool RenderNodes(const std::vector<Node>& nodes, const std::map<std::string, std::string>& values,
                 std::string* out) {
  bool complete = true;
  for (const Node& n : nodes) {
    switch (n.kind) {
      case Node::Kind::kText:
        *out += n.text;
        break;
      case Node::Kind::kValue: {
        auto it = values.find(n.text);
        const std::string v = it == values.end() ? std::string() : std::string(Trim(it->second));
        if (v.empty()) complete = false;
        *out += ApplyFilter(v, n.filter);
        break;
      }
      case Node::Kind::kGroup: {
        std::string inner;
        if (RenderNodes(n.children, values, &inner)) *out += inner;
        break;
      }
    }
  }
  return complete;
}

void CollectNames(const std::vector<Node>& nodes, std::set<std::string>* out) {
  for (const Node& n : nodes) {
    if (n.kind == Node::Kind::kValue) out->insert(n.text);
    if (n.kind == Node::Kind::kGroup) CollectNames(n.children, out);
  }
}

}  // namespace

Result<CaptionTemplate> CaptionTemplate::Parse(std::string_view text,
                                               const std::vector<std::string>& names) {
  CaptionTemplate t;
  t.text_ = std::string(text);
  Parser parser(text, names);
  REEL_RETURN_IF_ERROR(parser.Parse(&t.nodes_));
  return t;
}

std::string CaptionTemplate::Render(const std::map<std::string, std::string>& values) const {
  std::string out;
  RenderNodes(nodes_, values, &out);
  return TidyText(out);
}

std::vector<std::string> CaptionTemplate::used_names() const {
  std::set<std::string> names;
  CollectNames(nodes_, &names);
  return std::vector<std::string>(names.begin(), names.end());
}

std::string AsSentence(std::string_view text) {
  std::string s = TidyText(text);
  if (s.empty()) return s;
  if (std::islower(static_cast<unsigned char>(s[0]))) {
    s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  }
  const char last = s.back();
  if (last != '.' && last != '!' && last != '?' && last != '"' && last != '\'') {
    while (!s.empty() && (s.back() == ',' || s.back() == ';' || s.back() == ':')) s.pop_back();
    s += '.';
  }
  return s;
}

std::string TidyText(std::string_view text) {
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (std::isspace(static_cast<unsigned char>(ch))) {
      space = !out.empty();
      continue;
    }
    const bool punct = ch == ',' || ch == ';' || ch == ':' || ch == '.';
    if (space && !punct) out += ' ';
    space = false;
    out += ch;
  }
  return out;
}

}  // namespace reel
