#include "util/rational.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace reel {
namespace {

__int128 Gcd(__int128 a, __int128 b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    __int128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

bool FitsInt64(__int128 v) {
  return v >= std::numeric_limits<int64_t>::min() && v <= std::numeric_limits<int64_t>::max();
}

// floor(n / d) for d > 0.
__int128 FloorDiv(__int128 n, __int128 d) {
  __int128 q = n / d;
  if ((n % d != 0) && (n < 0)) --q;
  return q;
}

}  // namespace

Rational::Rational(int64_t num, int64_t den) {
  *this = FromWide(num, den);
}

Rational Rational::FromWide(__int128 num, __int128 den) {
  if (den == 0) return Invalid();
  if (den < 0) {
    num = -num;
    den = -den;
  }
  __int128 g = Gcd(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (num == 0) den = 1;
  if (!FitsInt64(num) || !FitsInt64(den)) return Invalid();
  return Rational(static_cast<int64_t>(num), static_cast<int64_t>(den), Normalised{});
}

Rational Rational::Approximate(double value, int64_t max_den) {
  if (!std::isfinite(value) || max_den < 1) return Invalid();
  // Continued-fraction convergents, keeping the best one with den <= max_den.
  const bool negative = value < 0;
  double x = std::fabs(value);
  if (x > static_cast<double>(std::numeric_limits<int64_t>::max() / 2)) return Invalid();
  int64_t h0 = 0, h1 = 1, k0 = 1, k1 = 0;  // h/k convergents
  double frac = x;
  for (int i = 0; i < 64; ++i) {
    double a_d = std::floor(frac);
    if (a_d > static_cast<double>(std::numeric_limits<int64_t>::max() / 2)) break;
    int64_t a = static_cast<int64_t>(a_d);
    __int128 h2 = static_cast<__int128>(a) * h1 + h0;
    __int128 k2 = static_cast<__int128>(a) * k1 + k0;
    if (k2 > max_den || !FitsInt64(h2)) break;
    h0 = h1;
    h1 = static_cast<int64_t>(h2);
    k0 = k1;
    k1 = static_cast<int64_t>(k2);
    double rem = frac - a_d;
    if (rem < 1e-15) break;
    frac = 1.0 / rem;
  }
  if (k1 == 0) return Invalid();
  return Rational(negative ? -h1 : h1, k1);
}

Result<Rational> Rational::Parse(std::string_view text) {
  auto parse_int = [](std::string_view s, int64_t* out) {
    if (s.empty()) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-' || s[0] == '+') {
      neg = s[0] == '-';
      i = 1;
    }
    if (i == s.size()) return false;
    __int128 v = 0;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
      if (v > std::numeric_limits<int64_t>::max()) return false;
    }
    *out = static_cast<int64_t>(neg ? -v : v);
    return true;
  };
  const size_t slash = text.find('/');
  int64_t num = 0, den = 1;
  if (slash == std::string_view::npos) {
    if (!parse_int(text, &num)) {
      return Status::InvalidArgument("not a rational number: '" + std::string(text) + "'");
    }
  } else if (!parse_int(text.substr(0, slash), &num) || !parse_int(text.substr(slash + 1), &den)) {
    return Status::InvalidArgument("not a rational number: '" + std::string(text) + "'");
  }
  if (den == 0) {
    return Status::InvalidArgument("zero denominator in '" + std::string(text) + "'");
  }
  return Rational(num, den);
}

Result<Rational> Rational::ParseDecimal(std::string_view text) {
  const size_t dot = text.find('.');
  if (dot == std::string_view::npos) return Parse(text);
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac = text.substr(dot + 1);
  if (frac.empty() || frac.size() > 15 || frac.find_first_not_of("0123456789") != frac.npos) {
    return Status::InvalidArgument("not a decimal number: '" + std::string(text) + "'");
  }
  const bool negative = !whole.empty() && whole[0] == '-';
  Result<Rational> w = whole.empty() || whole == "-" || whole == "+"
                           ? Result<Rational>(Rational())
                           : Parse(whole);
  if (!w.ok()) return Status::InvalidArgument("not a decimal number: '" + std::string(text) + "'");
  int64_t den = 1, num = 0;
  for (char c : frac) {
    den *= 10;
    num = num * 10 + (c - '0');
  }
  const Rational f(negative ? -num : num, den);
  const Rational r = *w + f;
  if (!r.valid()) return Status::InvalidArgument("number out of range: '" + std::string(text) + "'");
  return r;
}

std::string Rational::ToString() const {
  if (!valid()) return "invalid";
  if (den_ == 1) return std::to_string(num_);
  return std::to_string(num_) + "/" + std::to_string(den_);
}

int64_t Rational::Floor() const {
  if (!valid()) return 0;
  return static_cast<int64_t>(FloorDiv(num_, den_));
}

int64_t Rational::Ceil() const {
  if (!valid()) return 0;
  return static_cast<int64_t>(-FloorDiv(-static_cast<__int128>(num_), den_));
}

int64_t Rational::Round() const {
  if (!valid()) return 0;
  __int128 n = num_;
  __int128 twice = 2 * n + (n >= 0 ? den_ : -den_);
  __int128 q = twice / (2 * static_cast<__int128>(den_));  // truncation == away-from-zero half
  return static_cast<int64_t>(q);
}

Rational operator+(const Rational& a, const Rational& b) {
  if (!a.valid() || !b.valid()) return Rational::Invalid();
  return Rational::FromWide(
      static_cast<__int128>(a.num_) * b.den_ + static_cast<__int128>(b.num_) * a.den_,
      static_cast<__int128>(a.den_) * b.den_);
}

Rational operator-(const Rational& a, const Rational& b) {
  return a + (-b);
}

Rational operator*(const Rational& a, const Rational& b) {
  if (!a.valid() || !b.valid()) return Rational::Invalid();
  return Rational::FromWide(static_cast<__int128>(a.num_) * b.num_,
                            static_cast<__int128>(a.den_) * b.den_);
}

Rational operator/(const Rational& a, const Rational& b) {
  if (!a.valid() || !b.valid() || b.num_ == 0) return Rational::Invalid();
  return Rational::FromWide(static_cast<__int128>(a.num_) * b.den_,
                            static_cast<__int128>(a.den_) * b.num_);
}

bool operator<(const Rational& a, const Rational& b) {
  return static_cast<__int128>(a.num_) * b.den_ < static_cast<__int128>(b.num_) * a.den_;
}

Rational TicksToSeconds(int64_t ticks, Rational time_base) {
  return Rational::FromInt(ticks) * time_base;
}

std::string FormatTimecode(Rational seconds) {
  if (!seconds.valid()) return "invalid";
  const bool negative = seconds < Rational();
  Rational abs = negative ? -seconds : seconds;
  int64_t ms = (abs * Rational::FromInt(1000)).Round();
  int64_t h = ms / 3600000, m = (ms / 60000) % 60, s = (ms / 1000) % 60, rem = ms % 1000;
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%02lld:%02lld:%02lld.%03lld", negative ? "-" : "",
                static_cast<long long>(h), static_cast<long long>(m), static_cast<long long>(s),
                static_cast<long long>(rem));
  return buf;
}

}  // namespace reel
