// Deinterlacing, numerically as FFmpeg 5.1's yadif filter in its default mode (one frame
// out per frame in, field parity from the frame, spatial interlacing check on), so a
// frame reel deinterlaces equals what `ffmpeg -vf yadif=deint=interlaced` gives.
//
// Per missing line (the field not kept: the bottom one for top-field-first frames), each
// pixel is the spatial prediction (the average of the pixels above and below along the
// best of five directions) clamped around the temporal one (the average of that pixel in
// the frames before and this one) by how much the neighbourhood moves. The first frame
// uses itself as the one before, the last itself as the one after.
//
// Private to the video module (it works on AVFrames). Not thread-safe.

#ifndef REEL_VIDEO_DEINTERLACE_H_
#define REEL_VIDEO_DEINTERLACE_H_

extern "C" {
#include <libavutil/frame.h>
}

namespace reel::av {

// Whether Yadif() can work on frames of this pixel format: planar, 8 to 16 bits a sample.
bool CanDeinterlace(int pixel_format);

// Writes into `out` (allocated here, same format and size as `cur`) `cur` with its
// second field (in display order) rebuilt from `prev`, `cur` and `next`. `top_field_first`
// says which field is kept. Returns false when the format cannot be deinterlaced or the
// buffer cannot be allocated.
bool Yadif(const AVFrame* prev, const AVFrame* cur, const AVFrame* next, bool top_field_first,
           AVFrame* out);

}  // namespace reel::av

#endif  // REEL_VIDEO_DEINTERLACE_H_
