#include "curate/filter.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "util/json.h"
#include "util/strings.h"

namespace reel {
namespace {

// ---------------------------------------------------------------- lexer

enum class Tok { kEnd, kNumber, kString, kName, kOp, kLParen, kRParen, kComma };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // name (lower-cased), operator, or string value
  double number = 0;
  bool integral = false;
  size_t pos = 0;  // 0-based offset in the expression
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Status Run(std::vector<Token>* out) {
    while (true) {
      while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      Token t;
      t.pos = pos_;
      if (pos_ >= s_.size()) {
        out->push_back(t);
        return Status::OK();
      }
      const char c = s_[pos_];
      if (std::isdigit(static_cast<unsigned char>(c)) ||
          (c == '.' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
        REEL_RETURN_IF_ERROR(Number(&t));
      } else if (c == '\'' || c == '"') {
        REEL_RETURN_IF_ERROR(String(&t));
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        t.kind = Tok::kName;
        t.text = ToLower(s_.substr(pos_, e - pos_));
        pos_ = e;
      } else if (c == '(' || c == ')' || c == ',') {
        t.kind = c == '(' ? Tok::kLParen : (c == ')' ? Tok::kRParen : Tok::kComma);
        t.text = std::string(1, c);
        ++pos_;
      } else {
        static const char* kOps[] = {"==", "!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%"};
        bool matched = false;
        for (const char* op : kOps) {
          const std::string_view o(op);
          if (s_.substr(pos_, o.size()) == o) {
            t.kind = Tok::kOp;
            t.text = std::string(o);
            pos_ += o.size();
            matched = true;
            break;
          }
        }
        if (!matched) return Error(pos_, std::string("unexpected character '") + c + "'");
      }
      out->push_back(std::move(t));
    }
  }

  Status Error(size_t pos, const std::string& msg) const;

 private:
  Status Number(Token* t) {
    size_t e = pos_;
    bool integral = true;
    while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
    if (e < s_.size() && s_[e] == '.') {
      integral = false;
      ++e;
      while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
    }
    if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      integral = false;
      ++e;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      const size_t digits = e;
      while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
      if (e == digits) return Error(pos_, "malformed number");
    }
    if (e < s_.size() &&
        (std::isalpha(static_cast<unsigned char>(s_[e])) || s_[e] == '_' || s_[e] == '.')) {
      return Error(pos_, "malformed number");
    }
    const std::string text(s_.substr(pos_, e - pos_));
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), t->number);
    if (ec != std::errc() || ptr != text.data() + text.size()) return Error(pos_, "malformed number");
    t->kind = Tok::kNumber;
    t->integral = integral && text.size() < 18;
    t->text = text;
    pos_ = e;
    return Status::OK();
  }

  Status String(Token* t) {
    const char quote = s_[pos_];
    size_t i = pos_ + 1;
    std::string value;
    while (true) {
      if (i >= s_.size()) return Error(pos_, "unterminated string");
      if (s_[i] == quote) {
        if (i + 1 < s_.size() && s_[i + 1] == quote) {  // doubled quote
          value.push_back(quote);
          i += 2;
          continue;
        }
        break;
      }
      value.push_back(s_[i++]);
    }
    t->kind = Tok::kString;
    t->text = value;
    pos_ = i + 1;
    return Status::OK();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

Status FilterError(std::string_view expr, size_t pos, const std::string& msg) {
  std::string m = "filter at column " + std::to_string(pos + 1) + ": " + msg + "\n  " +
                  std::string(expr) + "\n  " + std::string(pos, ' ') + "^";
  return Status::InvalidArgument(m);
}

Status Lexer::Error(size_t pos, const std::string& msg) const { return FilterError(s_, pos, msg); }

// ---------------------------------------------------------------- parser

struct Piece {
  std::string sql;
  std::vector<SqlValue> params;
  FilterType type = FilterType::kNumber;
  bool is_null_literal = false;
  std::vector<std::string> columns;
  size_t begin = 0, end = 0;  // source span
};

const char* TypeName(FilterType t) {
  switch (t) {
    case FilterType::kNumber:
      return "a number";
    case FilterType::kText:
      return "text";
    case FilterType::kBool:
      return "a condition";
  }
  return "?";
}

void Append(Piece* to, const Piece& from) {
  to->params.insert(to->params.end(), from.params.begin(), from.params.end());
  to->columns.insert(to->columns.end(), from.columns.begin(), from.columns.end());
}

class Parser {
 public:
  Parser(std::string_view expr, std::vector<Token> tokens) : expr_(expr), t_(std::move(tokens)) {}

  Result<CompiledFilter> Parse() {
    CompiledFilter out;
    // The top level: an and-chain becomes separate conjuncts unless an "or" follows.
    std::vector<Piece> conjuncts;
    REEL_ASSIGN_OR_RETURN(Piece first, ParseNot());
    conjuncts.push_back(std::move(first));
    while (IsKeyword("and")) {
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece next, ParseNot());
      conjuncts.push_back(std::move(next));
    }
    Piece whole = Join(conjuncts, "AND");
    while (IsKeyword("or")) {
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece rhs, ParseAnd());
      REEL_RETURN_IF_ERROR(RequireBool(whole, "or"));
      REEL_RETURN_IF_ERROR(RequireBool(rhs, "or"));
      whole = Binary(whole, "OR", rhs, FilterType::kBool);
      conjuncts = {whole};
    }
    if (t_[i_].kind != Tok::kEnd) return Err(t_[i_].pos, "expected 'and', 'or' or the end");
    for (const Piece& p : conjuncts) REEL_RETURN_IF_ERROR(RequireBool(p, "a filter"));
    out.whole = ToPart(whole);
    for (const Piece& p : conjuncts) out.conjuncts.push_back(ToPart(p));
    return out;
  }

 private:
  Status Err(size_t pos, const std::string& msg) const { return FilterError(expr_, pos, msg); }

  bool IsKeyword(const char* k) const { return t_[i_].kind == Tok::kName && t_[i_].text == k; }
  bool IsOp(const char* op) const { return t_[i_].kind == Tok::kOp && t_[i_].text == op; }

  CompiledFilter::Part ToPart(const Piece& p) const {
    CompiledFilter::Part part;
    part.text = std::string(Trim(expr_.substr(p.begin, p.end - p.begin)));
    part.sql = p.sql;
    part.params = p.params;
    std::set<std::string> seen;
    for (const auto& c : p.columns) {
      if (seen.insert(c).second) part.columns.push_back(c);
    }
    return part;
  }

  Status RequireBool(const Piece& p, const std::string& where) const {
    if (p.type != FilterType::kBool) {
      return Err(p.begin, std::string("expected a condition for ") + where + ", found " +
                              TypeName(p.type));
    }
    return Status::OK();
  }

  static Piece Binary(const Piece& a, const std::string& op, const Piece& b, FilterType type) {
    Piece p;
    p.sql = "(" + a.sql + " " + op + " " + b.sql + ")";
    Append(&p, a);
    Append(&p, b);
    p.type = type;
    p.begin = a.begin;
    p.end = b.end;
    return p;
  }

  static Piece Join(const std::vector<Piece>& parts, const std::string& op) {
    Piece p = parts.front();
    for (size_t k = 1; k < parts.size(); ++k) p = Binary(p, op, parts[k], FilterType::kBool);
    return p;
  }

  Result<Piece> ParseAnd() {
    REEL_ASSIGN_OR_RETURN(Piece lhs, ParseNot());
    while (IsKeyword("and")) {
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece rhs, ParseNot());
      REEL_RETURN_IF_ERROR(RequireBool(lhs, "and"));
      REEL_RETURN_IF_ERROR(RequireBool(rhs, "and"));
      lhs = Binary(lhs, "AND", rhs, FilterType::kBool);
    }
    return lhs;
  }

  Result<Piece> ParseOr() {
    REEL_ASSIGN_OR_RETURN(Piece lhs, ParseAnd());
    while (IsKeyword("or")) {
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece rhs, ParseAnd());
      REEL_RETURN_IF_ERROR(RequireBool(lhs, "or"));
      REEL_RETURN_IF_ERROR(RequireBool(rhs, "or"));
      lhs = Binary(lhs, "OR", rhs, FilterType::kBool);
    }
    return lhs;
  }

  Result<Piece> ParseNot() {
    if (IsKeyword("not")) {
      const size_t begin = t_[i_].pos;
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece inner, ParseNot());
      REEL_RETURN_IF_ERROR(RequireBool(inner, "not"));
      Piece p = inner;
      p.sql = "(NOT " + inner.sql + ")";
      p.begin = begin;
      return p;
    }
    return ParseComparison();
  }

  Result<Piece> ParseComparison() {
    REEL_ASSIGN_OR_RETURN(Piece lhs, ParseSum());
    if (t_[i_].kind == Tok::kOp) {
      static const std::pair<const char*, const char*> kCompare[] = {
          {"=", "="}, {"==", "="}, {"!=", "<>"}, {"<>", "<>"}, {"<", "<"},
          {"<=", "<="}, {">", ">"}, {">=", ">="}};
      for (const auto& [op, sql] : kCompare) {
        if (!IsOp(op)) continue;
        const size_t op_pos = t_[i_].pos;
        ++i_;
        REEL_ASSIGN_OR_RETURN(Piece rhs, ParseSum());
        if (lhs.is_null_literal || rhs.is_null_literal) {
          return Err(op_pos, "use 'is null' or 'is not null' to test for null");
        }
        const bool equality = std::string(sql) == "=" || std::string(sql) == "<>";
        if (lhs.type != rhs.type || (lhs.type == FilterType::kBool && !equality)) {
          return Err(op_pos, std::string("cannot compare ") + TypeName(lhs.type) + " with " +
                                 TypeName(rhs.type));
        }
        return Binary(lhs, sql, rhs, FilterType::kBool);
      }
      return lhs;
    }
    const bool negated_in = IsKeyword("not") && i_ + 1 < t_.size() &&
                            t_[i_ + 1].kind == Tok::kName && t_[i_ + 1].text == "in";
    if (IsKeyword("in") || negated_in) {
      const size_t in_pos = t_[i_].pos;
      i_ += negated_in ? 2 : 1;
      if (t_[i_].kind != Tok::kLParen) return Err(t_[i_].pos, "expected '(' after 'in'");
      ++i_;
      Piece p = lhs;
      std::string list;
      while (true) {
        const Token& t = t_[i_];
        if (t.kind != Tok::kNumber && t.kind != Tok::kString) {
          return Err(t.pos, "expected a number or a string in the list");
        }
        const FilterType item = t.kind == Tok::kNumber ? FilterType::kNumber : FilterType::kText;
        if (item != lhs.type) {
          return Err(t.pos, std::string("list item is ") + TypeName(item) + ", the value is " +
                                TypeName(lhs.type));
        }
        p.params.push_back(LiteralValue(t));
        list += list.empty() ? "?" : ", ?";
        ++i_;
        if (t_[i_].kind == Tok::kComma) {
          ++i_;
          continue;
        }
        if (t_[i_].kind == Tok::kRParen) break;
        return Err(t_[i_].pos, "expected ',' or ')' in the list");
      }
      p.end = t_[i_].pos + 1;
      ++i_;
      (void)in_pos;
      p.sql = "(" + lhs.sql + (negated_in ? " NOT IN (" : " IN (") + list + "))";
      p.type = FilterType::kBool;
      return p;
    }
    if (IsKeyword("between")) {
      const size_t pos = t_[i_].pos;
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece lo, ParseSum());
      if (!IsKeyword("and")) return Err(t_[i_].pos, "expected 'and' in 'between ... and ...'");
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece hi, ParseSum());
      if (lhs.type != FilterType::kNumber || lo.type != FilterType::kNumber ||
          hi.type != FilterType::kNumber) {
        return Err(pos, "'between' needs numbers");
      }
      Piece p;
      p.sql = "(" + lhs.sql + " BETWEEN " + lo.sql + " AND " + hi.sql + ")";
      Append(&p, lhs);
      Append(&p, lo);
      Append(&p, hi);
      p.type = FilterType::kBool;
      p.begin = lhs.begin;
      p.end = hi.end;
      return p;
    }
    if (IsKeyword("is")) {
      ++i_;
      const bool negated = IsKeyword("not");
      if (negated) ++i_;
      if (!IsKeyword("null")) return Err(t_[i_].pos, "expected 'null' after 'is'");
      Piece p = lhs;
      p.end = t_[i_].pos + 4;
      ++i_;
      p.sql = "(" + lhs.sql + (negated ? " IS NOT NULL)" : " IS NULL)");
      p.type = FilterType::kBool;
      return p;
    }
    return lhs;
  }

  Result<Piece> ParseSum() {
    REEL_ASSIGN_OR_RETURN(Piece lhs, ParseProduct());
    while (IsOp("+") || IsOp("-")) {
      const std::string op = t_[i_].text;
      const size_t pos = t_[i_].pos;
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece rhs, ParseProduct());
      if (lhs.type != FilterType::kNumber || rhs.type != FilterType::kNumber) {
        return Err(pos, "'" + op + "' needs numbers");
      }
      lhs = Binary(lhs, op, rhs, FilterType::kNumber);
    }
    return lhs;
  }

  Result<Piece> ParseProduct() {
    REEL_ASSIGN_OR_RETURN(Piece lhs, ParseUnary());
    while (IsOp("*") || IsOp("/") || IsOp("%")) {
      const std::string op = t_[i_].text;
      const size_t pos = t_[i_].pos;
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece rhs, ParseUnary());
      if (lhs.type != FilterType::kNumber || rhs.type != FilterType::kNumber) {
        return Err(pos, "'" + op + "' needs numbers");
      }
      // Real division, as people expect 1/2 to be 0.5.
      if (op == "/") {
        Piece p = Binary(lhs, "/", rhs, FilterType::kNumber);
        p.sql = "(CAST(" + lhs.sql + " AS REAL) / " + rhs.sql + ")";
        lhs = p;
      } else {
        lhs = Binary(lhs, op, rhs, FilterType::kNumber);
      }
    }
    return lhs;
  }

  Result<Piece> ParseUnary() {
    if (IsOp("-")) {
      const size_t pos = t_[i_].pos;
      ++i_;
      REEL_ASSIGN_OR_RETURN(Piece inner, ParseUnary());
      if (inner.type != FilterType::kNumber) return Err(pos, "'-' needs a number");
      inner.sql = "(-" + inner.sql + ")";
      inner.begin = pos;
      return inner;
    }
    return ParsePrimary();
  }

  static SqlValue LiteralValue(const Token& t) {
    if (t.kind == Tok::kString) return SqlValue(t.text);
    if (t.integral) return SqlValue(static_cast<int64_t>(t.number));
    return SqlValue(t.number);
  }

  Result<Piece> ParsePrimary() {
    const Token& t = t_[i_];
    Piece p;
    p.begin = t.pos;
    switch (t.kind) {
      case Tok::kNumber:
      case Tok::kString:
        p.sql = "?";
        p.params.push_back(LiteralValue(t));
        p.type = t.kind == Tok::kNumber ? FilterType::kNumber : FilterType::kText;
        p.end = NextPos();
        ++i_;
        return p;
      case Tok::kLParen: {
        ++i_;
        REEL_ASSIGN_OR_RETURN(Piece inner, ParseOr());
        if (t_[i_].kind != Tok::kRParen) return Err(t_[i_].pos, "expected ')'");
        inner.sql = "(" + inner.sql + ")";
        inner.begin = t.pos;
        inner.end = t_[i_].pos + 1;
        ++i_;
        return inner;
      }
      case Tok::kName:
        return ParseName();
      case Tok::kEnd:
        return Err(t.pos, "expected a value, found the end of the filter");
      default:
        return Err(t.pos, "expected a value, found '" + t.text + "'");
    }
  }

  size_t NextPos() const { return i_ + 1 < t_.size() ? t_[i_ + 1].pos : expr_.size(); }

  Result<Piece> ParseName() {
    const Token t = t_[i_];
    Piece p;
    p.begin = t.pos;
    if (t.text == "true" || t.text == "false") {
      p.sql = t.text == "true" ? "1" : "0";
      p.type = FilterType::kBool;
      p.end = t.pos + t.text.size();
      ++i_;
      return p;
    }
    if (t.text == "null") {
      p.sql = "NULL";
      p.is_null_literal = true;
      p.end = t.pos + 4;
      ++i_;
      return p;
    }
    static const std::set<std::string> kReserved = {"and", "or", "not", "in", "between", "is"};
    if (kReserved.count(t.text)) return Err(t.pos, "expected a value, found '" + t.text + "'");
    if (i_ + 1 < t_.size() && t_[i_ + 1].kind == Tok::kLParen) return ParseCall();
    for (const FilterColumn& c : FilterColumns()) {
      if (t.text == c.name) {
        p.sql = c.sql;
        p.type = c.type;
        p.columns.push_back(c.name);
        p.end = t.pos + t.text.size();
        ++i_;
        return p;
      }
    }
    return Err(t.pos, "unknown name '" + t.text + "' (see `reel curate filter --columns`)");
  }

  Result<Piece> ParseCall() {
    const Token name = t_[i_];
    i_ += 2;  // name (
    std::vector<Piece> args;
    if (t_[i_].kind != Tok::kRParen) {
      while (true) {
        REEL_ASSIGN_OR_RETURN(Piece a, ParseSum());
        args.push_back(std::move(a));
        if (t_[i_].kind == Tok::kComma) {
          ++i_;
          continue;
        }
        break;
      }
    }
    if (t_[i_].kind != Tok::kRParen) return Err(t_[i_].pos, "expected ')' after the arguments");
    const size_t end = t_[i_].pos + 1;
    ++i_;
    auto need = [&](size_t count, std::initializer_list<FilterType> types) -> Status {
      if (args.size() != count) {
        return Err(name.pos, name.text + "() takes " + std::to_string(count) + " argument" +
                                 (count == 1 ? "" : "s"));
      }
      size_t k = 0;
      for (FilterType want : types) {
        if (args[k].type != want) {
          return Err(args[k].begin, name.text + "(): argument " + std::to_string(k + 1) +
                                        " must be " + TypeName(want));
        }
        ++k;
      }
      return Status::OK();
    };
    Piece p;
    p.begin = name.pos;
    p.end = end;
    for (const Piece& a : args) Append(&p, a);
    if (name.text == "abs") {
      REEL_RETURN_IF_ERROR(need(1, {FilterType::kNumber}));
      p.sql = "abs(" + args[0].sql + ")";
      p.type = FilterType::kNumber;
    } else if (name.text == "min" || name.text == "max") {
      REEL_RETURN_IF_ERROR(need(2, {FilterType::kNumber, FilterType::kNumber}));
      p.sql = name.text + "(" + args[0].sql + ", " + args[1].sql + ")";
      p.type = FilterType::kNumber;
    } else if (name.text == "lower") {
      REEL_RETURN_IF_ERROR(need(1, {FilterType::kText}));
      p.sql = "lower(" + args[0].sql + ")";
      p.type = FilterType::kText;
    } else if (name.text == "length") {
      REEL_RETURN_IF_ERROR(need(1, {FilterType::kText}));
      p.sql = "length(" + args[0].sql + ")";
      p.type = FilterType::kNumber;
    } else if (name.text == "contains") {
      REEL_RETURN_IF_ERROR(need(2, {FilterType::kText, FilterType::kText}));
      p.sql = "(instr(" + args[0].sql + ", " + args[1].sql + ") > 0)";
      p.type = FilterType::kBool;
    } else if (name.text == "color") {
      REEL_RETURN_IF_ERROR(need(1, {FilterType::kText}));
      p.sql = "coalesce((SELECT json_extract(je.value, '$.fraction') FROM json_each(c.dominant_colors) je "
              "WHERE json_extract(je.value, '$.name') = " + args[0].sql + "), 0.0)";
      p.type = FilterType::kNumber;
    } else if (name.text == "in_subset") {
      REEL_RETURN_IF_ERROR(need(1, {FilterType::kText}));
      p.sql = "EXISTS (SELECT 1 FROM subset_clips sc JOIN subsets s ON s.id = sc.subset_id "
              "WHERE sc.clip_id = c.id AND sc.passed = 1 AND s.name = " + args[0].sql + ")";
      p.type = FilterType::kBool;
    } else {
      return Err(name.pos, "unknown function '" + name.text + "'");
    }
    return p;
  }

  std::string_view expr_;
  std::vector<Token> t_;
  size_t i_ = 0;
};

std::string ValueText(const SqlValue& v) {
  if (std::holds_alternative<std::nullptr_t>(v)) return "unknown";
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    const double r = std::round(*d * 1000.0) / 1000.0;
    return FormatJsonNumber(r);
  }
  return "'" + std::get<std::string>(v) + "'";
}

}  // namespace

const std::vector<FilterColumn>& FilterColumns() {
  static const std::vector<FilterColumn> kColumns = {
      {"duration", FilterType::kNumber, "c.duration_seconds", "clip length in seconds"},
      {"frames", FilterType::kNumber, "c.frames", "clip length in frames"},
      {"start", FilterType::kNumber, "(CAST(c.start_num AS REAL) / c.start_den)",
       "clip start within its video, seconds"},
      {"end", FilterType::kNumber, "(CAST(c.end_num AS REAL) / c.end_den)",
       "clip end within its video, seconds"},
      {"motion", FilterType::kNumber, "c.motion",
       "mean optical-flow magnitude per frame, % of the frame diagonal"},
      {"static_ratio", FilterType::kNumber, "c.static_ratio", "fraction of frames without motion"},
      {"camera", FilterType::kText, "c.camera_motion",
       "static, pan_left, pan_right, tilt_up, tilt_down, zoom_in, zoom_out, shaky"},
      {"sharpness", FilterType::kNumber, "c.sharpness", "variance of the Laplacian"},
      {"brightness", FilterType::kNumber, "c.brightness", "mean luma, 0..1"},
      {"contrast", FilterType::kNumber, "c.contrast", "luma standard deviation, 0..1"},
      {"black", FilterType::kNumber, "c.black_ratio", "fraction of black or blank frames"},
      {"text", FilterType::kNumber, "c.text_area", "fraction of the frame covered by text"},
      {"colorfulness", FilterType::kNumber, "c.colorfulness", "Hasler-Suesstrunk colourfulness"},
      {"duplicate", FilterType::kBool, "(c.duplicate_of IS NOT NULL)",
       "a near-duplicate of a better clip (see `reel curate dedup`)"},
      {"captions", FilterType::kNumber,
       "(SELECT count(*) FROM captions k WHERE k.clip_id = c.id)", "number of captions"},
      {"state", FilterType::kText, "c.state", "candidate, accepted, rejected or exported"},
      {"width", FilterType::kNumber,
       "(CASE WHEN v.rotation IN (90, 270) THEN v.height ELSE v.width END)",
       "video width as displayed (after rotation)"},
      {"height", FilterType::kNumber,
       "(CASE WHEN v.rotation IN (90, 270) THEN v.width ELSE v.height END)",
       "video height as displayed (after rotation)"},
      {"aspect", FilterType::kNumber,
       "(CASE WHEN v.rotation IN (90, 270) THEN CAST(v.height AS REAL) / v.width "
       "ELSE CAST(v.width AS REAL) / v.height END)",
       "display width / height"},
      {"fps", FilterType::kNumber, "(CAST(v.fps_num AS REAL) / NULLIF(v.fps_den, 0))",
       "video frame rate"},
      {"vfr", FilterType::kBool, "(v.vfr != 0)", "the video has a variable frame rate"},
      {"audio", FilterType::kBool, "(v.has_audio != 0)", "the video has an audio track"},
      {"codec", FilterType::kText, "v.codec", "video codec (h264, hevc, vp9, ...)"},
      {"container", FilterType::kText, "v.container", "container format"},
      {"path", FilterType::kText, "v.path", "video file path"},
      {"video", FilterType::kNumber, "v.id", "video id"},
      {"id", FilterType::kNumber, "c.id", "clip id"},
  };
  return kColumns;
}

Result<CompiledFilter> CompileFilter(std::string_view expression) {
  if (Trim(expression).empty()) return Status::InvalidArgument("empty filter");
  std::vector<Token> tokens;
  Lexer lexer(expression);
  REEL_RETURN_IF_ERROR(lexer.Run(&tokens));
  Parser parser(expression, std::move(tokens));
  return parser.Parse();
}

Result<FilterSummary> ApplyFilter(Catalog& catalog, std::string_view expression,
                                  const std::string& subset, bool dry_run) {
  if (!dry_run && subset.empty()) return Status::InvalidArgument("a filter needs a subset name");
  REEL_ASSIGN_OR_RETURN(CompiledFilter f, CompileFilter(expression));
  // SELECT id, passed, <each conjunct>, <each referenced column>.
  std::vector<std::string> columns;
  for (const auto& part : f.conjuncts) {
    for (const auto& c : part.columns) {
      if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
    }
  }
  std::string sql = "SELECT c.id, coalesce(" + f.whole.sql + ", 0)";
  std::vector<SqlValue> params = f.whole.params;
  for (const auto& part : f.conjuncts) {
    sql += ", coalesce(" + part.sql + ", 0)";
    params.insert(params.end(), part.params.begin(), part.params.end());
  }
  for (const auto& name : columns) {
    for (const FilterColumn& c : FilterColumns()) {
      if (name == c.name) sql += std::string(", ") + c.sql;
    }
  }
  sql += " FROM clips c JOIN videos v ON v.id = c.video_id ORDER BY c.id";

  FilterSummary summary;
  std::vector<SubsetMember> members;
  REEL_RETURN_IF_ERROR(catalog.QueryReadOnly(
      sql, params, [](const std::vector<std::string>&) { return Status::OK(); },
      [&](const std::vector<SqlValue>& row) {
        SubsetMember m;
        m.clip_id = std::get<int64_t>(row[0]);
        m.passed = std::get<int64_t>(row[1]) != 0;
        ++summary.clips;
        if (m.passed) {
          ++summary.passed;
        } else {
          for (size_t k = 0; k < f.conjuncts.size(); ++k) {
            if (std::get<int64_t>(row[2 + k]) != 0) continue;
            const auto& part = f.conjuncts[k];
            m.reason = part.text;
            std::vector<std::string> values;
            for (const auto& name : part.columns) {
              const size_t idx = 2 + f.conjuncts.size() +
                                 (std::find(columns.begin(), columns.end(), name) - columns.begin());
              values.push_back(name + " = " + ValueText(row[idx]));
            }
            if (!values.empty()) m.reason += " (" + Join(values, ", ") + ")";
            ++summary.failed_at[part.text];
            break;
          }
        }
        members.push_back(std::move(m));
        return Status::OK();
      }));
  if (dry_run) return summary;

  Json config = Json::MakeObject();
  config["expression"] = std::string(expression);
  config["subset"] = subset;
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("filter", config));
  {
    REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
    SubsetRecord rec;
    rec.name = subset;
    rec.expression = std::string(expression);
    rec.sql = f.whole.sql;
    rec.run_id = summary.run_id;
    REEL_ASSIGN_OR_RETURN(summary.subset_id, catalog.PutSubset(rec));
    REEL_RETURN_IF_ERROR(catalog.AddSubsetMembers(summary.subset_id, members));
    REEL_RETURN_IF_ERROR(
        catalog.AddMetric(summary.run_id, "filter.passed", static_cast<double>(summary.passed)).status());
    REEL_RETURN_IF_ERROR(
        catalog.AddMetric(summary.run_id, "filter.clips", static_cast<double>(summary.clips)).status());
    REEL_RETURN_IF_ERROR(catalog.FinishRun(summary.run_id, RunStatus::kOk));
    REEL_RETURN_IF_ERROR(txn.Commit());
  }
  return summary;
}

}  // namespace reel
