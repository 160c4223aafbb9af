// Cutting a segment out of a video without re-encoding (stream copy).
//
// Packets can only be copied from a keyframe on, so the segment is copied from the last
// keyframe at or before `start_pts`, and it takes every packet decoded before `end_pts`
// (so B-frames keep their references), which can run a few frames past the end. In MP4
// and MOV output an edit list hides the frames before `start_pts`, so the file shows from
// the start exactly; in Matroska and AVI it shows from the keyframe. The first copy of
// each codec that hides frames is decoded up to its first frame to learn whether
// libavcodec's decoder honours the list (FFmpeg 5.1's libdav1d does not); where it does
// not, that copy and later ones of the codec are written without it, showing from the
// keyframe (an HEVC CRA's RASL pictures, which no decoder shows there, are left out).
// Packets without a decode time (Matroska's first ones after a seek) are given one
// counted back from the first that has one. The span shown is returned. Only the video
// stream is copied. Output goes to
// "<path>.partial" and is renamed into place when complete.
//
// Thread-safety: independent calls may run concurrently.

#ifndef REEL_VIDEO_REMUX_H_
#define REEL_VIDEO_REMUX_H_

#include <cstdint>
#include <string>

#include "util/rational.h"
#include "util/status.h"

namespace reel {

struct RemuxResult {
  int64_t first_pts = 0;  // of the first frame shown (input time base)
  int64_t end_pts = 0;    // end of the last packet written
  int64_t packets = 0;    // written, `hidden` included
  int64_t hidden = 0;     // written before first_pts and hidden by an edit list (MP4, MOV)
  // Packets whose times were mended as ffmpeg -c copy mends them: a decode time that ran
  // backwards (segments joined with overlapping times) or is missing, a display time
  // before the decode time (a damaged PES header).
  int64_t retimed = 0;
  // Leading pictures of the first keyframe left out of a copy without an edit list: an
  // HEVC CRA's RASL pictures, which predict from pictures before the copy.
  int64_t leading_dropped = 0;
  Rational time_base;
};

// The container a stream copy of `codec` (a decoder name, as VideoInfo::codec) is written
// in: "mp4" where MP4 can hold the codec, else the first of "mkv", "mov" and "avi" that
// can (ffv1, vp8 and theora go to mkv; gif, dnxhd and cinepak to mov; wmv2 and flv1 to
// avi). Empty when none can or the codec is unknown.
std::string StreamCopyContainer(const std::string& codec);

Result<RemuxResult> CopySegment(const std::string& input, const std::string& output,
                                int64_t start_pts, int64_t end_pts);

}  // namespace reel

#endif  // REEL_VIDEO_REMUX_H_
