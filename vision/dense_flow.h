// Dense optical flow with OpenCV's DIS that works at every frame size.
//
// OpenCV 4.6's DISOpticalFlow::calc fails on small frames and on wide, short ones: it
// throws when a side is under about 12 pixels, and it reads out of bounds (SIGSEGV) when
// it picks its pyramid from the width alone, which it does for frames under 32 rows that
// are wide enough (40x8, 128x16 and 256x24 crash with both the ultrafast and the medium
// preset; measured over 900 sizes from 1 to 2000 pixels a side). DenseFlow extends such
// frames with copies of their edge pixels to kFlowMinSide a side, on which every size tried
// works, and returns the flow of the real area. Frames of kFlowMinSide or more a side go
// to DIS unchanged, so their flow is exactly DIS's.
//
// Thread-safety: a DISOpticalFlow object is used by one thread at a time.

#ifndef REEL_VISION_DENSE_FLOW_H_
#define REEL_VISION_DENSE_FLOW_H_

#include <opencv2/core.hpp>
#include <opencv2/video/tracking.hpp>

namespace reel {

inline constexpr int kFlowMinSide = 32;

// Flow from `from` to `to` (8-bit, one channel, the same size, at least 1x1) into `flow`
// (CV_32FC2, the frames' size). Throws cv::Exception as OpenCV does for other bad input.
void DenseFlow(cv::DISOpticalFlow& dis, const cv::Mat& from, const cv::Mat& to, cv::Mat* flow);

}  // namespace reel

#endif  // REEL_VISION_DENSE_FLOW_H_
