// Rational: an exact fraction num/den for frame rates, time bases and timestamps.
//
// reel never stores a cut point or a frame rate as floating-point seconds: 29.97 fps is
// 30000/1001, and the timestamp of frame 1 of such a video is exactly 1001/30000 s.
// Values are kept normalised (den > 0, gcd(num, den) == 1); arithmetic is done in 128-bit
// and a result that does not fit in int64 is reported (kOverflow flag) instead of wrapping.
// A default-constructed Rational is 0/1. "Invalid" (den == 0) exists only as the result
// of Invalid() and division by zero, and compares unequal to everything but itself.
//
// Thread-safety: a value type.

#ifndef REEL_UTIL_RATIONAL_H_
#define REEL_UTIL_RATIONAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace reel {

class Rational {
 public:
  constexpr Rational() = default;
  // Normalises; den == 0 yields Invalid().
  Rational(int64_t num, int64_t den);
  static constexpr Rational FromInt(int64_t v) { return Rational(v, 1, Normalised{}); }
  static constexpr Rational Invalid() { return Rational(0, 0, Normalised{}); }
  // The closest fraction with den <= max_den (continued fractions), for ingesting
  // decimal user input such as "29.97" only when a caller explicitly asks for it.
  static Rational Approximate(double value, int64_t max_den = 1000000);
  // Parses "30000/1001", "25", "-3/4". Decimal notation is rejected (use Approximate).
  static Result<Rational> Parse(std::string_view text);
  // Parses exact decimals as well: "1.5" is 3/2, "0.041" is 41/1000; also "num/den".
  static Result<Rational> ParseDecimal(std::string_view text);

  constexpr int64_t num() const { return num_; }
  constexpr int64_t den() const { return den_; }
  constexpr bool valid() const { return den_ != 0; }
  constexpr bool is_zero() const { return num_ == 0 && den_ != 0; }

  // For display and statistics only; never for cut points.
  double ToDouble() const { return valid() ? static_cast<double>(num_) / den_ : 0.0; }
  // "num/den", or just "num" when den == 1; "invalid" when invalid.
  std::string ToString() const;
  Rational Inverse() const { return Rational(den_, num_); }

  // floor(value), ceil(value) and round-half-away-from-zero(value) as integers.
  int64_t Floor() const;
  int64_t Ceil() const;
  int64_t Round() const;

  // Exact arithmetic; yields Invalid() on overflow or with an invalid operand.
  friend Rational operator+(const Rational& a, const Rational& b);
  friend Rational operator-(const Rational& a, const Rational& b);
  friend Rational operator*(const Rational& a, const Rational& b);
  friend Rational operator/(const Rational& a, const Rational& b);
  Rational operator-() const { return Rational(-num_, den_, Normalised{}); }

  friend bool operator==(const Rational& a, const Rational& b) {
    return a.num_ == b.num_ && a.den_ == b.den_;
  }
  friend bool operator!=(const Rational& a, const Rational& b) { return !(a == b); }
  // Ordering of valid values (exact, via 128-bit cross multiplication).
  friend bool operator<(const Rational& a, const Rational& b);
  friend bool operator>(const Rational& a, const Rational& b) { return b < a; }
  friend bool operator<=(const Rational& a, const Rational& b) { return !(b < a); }
  friend bool operator>=(const Rational& a, const Rational& b) { return !(a < b); }

 private:
  struct Normalised {};
  constexpr Rational(int64_t num, int64_t den, Normalised) : num_(num), den_(den) {}
  static Rational FromWide(__int128 num, __int128 den);

  int64_t num_ = 0;
  int64_t den_ = 1;
};

// value * time_base, exact. E.g. the time of pts 3003 in time base 1/30000 is 1001/10000 s.
Rational TicksToSeconds(int64_t ticks, Rational time_base);

// Formats seconds as "HH:MM:SS.mmm" (rounded to the millisecond, for display).
std::string FormatTimecode(Rational seconds);

}  // namespace reel

#endif  // REEL_UTIL_RATIONAL_H_
