// Tensor facts as messages write them.
//
// Thread-safety: pure functions.

#ifndef REEL_NETS_TENSOR_TEXT_H_
#define REEL_NETS_TENSOR_TEXT_H_

#include <string>

#include <c10/util/ArrayRef.h>

namespace reel {

// "[2, 3, 224, 224]"; "[]" for a scalar's shape.
inline std::string ShapeText(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace reel

#endif  // REEL_NETS_TENSOR_TEXT_H_
