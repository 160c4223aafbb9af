// Clip filters: a small expression language compiled to parameterised SQL.
//
//   reel curate filter --where "duration >= 2 and motion > 0.3 and not duplicate" --subset S
//
// Grammar (keywords are case-insensitive):
//   expr       := or
//   or         := and ("or" and)*
//   and        := not ("and" not)*
//   not        := "not" not | comparison
//   comparison := sum [ op sum | ["not"] "in" "(" literal ("," literal)* ")"
//                     | "between" sum "and" sum | "is" ["not"] "null" ]
//   op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//   sum        := product (("+" | "-") product)*
//   product    := unary (("*" | "/" | "%") unary)*
//   unary      := "-" unary | primary
//   primary    := number | string | "true" | "false" | name | name "(" args ")" | "(" expr ")"
// Strings are quoted with ' or " (a doubled quote stands for itself). Names are the
// clip columns listed by FilterColumns(); functions are abs, min, max, lower, length,
// contains(text, text), color(name) (the fraction of the clip in that basic colour) and
// in_subset(name) (the clip passed subset `name`).
//
// Safety: names map to fixed SQL from the whitelist, every literal becomes a bound `?`
// parameter, and operators and functions come from fixed sets, so no text of the
// expression is ever pasted into SQL. Types are checked (a number is not compared with
// text). Errors give the column of the problem.
//
// A clip whose value is NULL (a signal not computed) does not pass a comparison.
//
// Thread-safety: pure functions; ApplyFilter uses the catalog on the calling thread.

#ifndef REEL_CURATE_FILTER_H_
#define REEL_CURATE_FILTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"

namespace reel {

enum class FilterType { kNumber, kText, kBool };

struct FilterColumn {
  const char* name;
  FilterType type;
  const char* sql;  // over clips c JOIN videos v
  const char* doc;
};

const std::vector<FilterColumn>& FilterColumns();

struct CompiledFilter {
  struct Part {
    std::string text;                  // the source text of the condition
    std::string sql;                   // boolean SQL
    std::vector<SqlValue> params;      // in order of the `?` in sql
    std::vector<std::string> columns;  // column names referenced (for reasons)
  };
  Part whole;
  std::vector<Part> conjuncts;  // the top-level "and" parts (one part when there are none)
};

// Compiles `expression`; errors read "at column N: ..." followed by the expression and
// a caret under the problem.
Result<CompiledFilter> CompileFilter(std::string_view expression);

struct FilterSummary {
  int64_t subset_id = 0;
  int64_t run_id = 0;
  int64_t clips = 0;
  int64_t passed = 0;
  // For clips that failed: how many failed first at each condition (by its text).
  std::map<std::string, int64_t> failed_at;
};

// Evaluates the filter over every clip and records subset `subset` (replacing one of that
// name) with each clip's pass or first failed condition and its values, e.g.
// "motion > 0.3 (motion = 0.12)". With dry_run nothing is written.
Result<FilterSummary> ApplyFilter(Catalog& catalog, std::string_view expression,
                                  const std::string& subset, bool dry_run = false);

}  // namespace reel

#endif  // REEL_CURATE_FILTER_H_
