// SHA-256 (FIPS 180-4), used for video content hashes and for verifying downloaded models.
//
// The block function uses the x86 SHA extensions when the CPU has them (checked once at
// run time) and a portable implementation otherwise; both give identical digests.
//
// Thread-safety: a Sha256 object is not thread-safe; use one per thread.

#ifndef REEL_UTIL_SHA256_H_
#define REEL_UTIL_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace reel {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;
  enum class Impl { kAuto, kPortable };

  explicit Sha256(Impl impl = Impl::kAuto);
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest; the object must not be updated afterwards.
  Digest Finish();

  static std::string ToHex(const Digest& digest);
  // Whether kAuto uses the CPU's SHA instructions on this machine.
  static bool HardwareAccelerated();

 private:
  void Blocks(const uint8_t* data, size_t count);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
  bool use_hardware_;
};

// Hex digest of a byte string.
std::string Sha256Hex(std::string_view data);
// Hex digest of a file's contents, read sequentially. Errors name the path.
Result<std::string> Sha256File(const std::string& path);

}  // namespace reel

#endif  // REEL_UTIL_SHA256_H_
