#include "curate/sidecar.h"

#include <sys/stat.h>

#include <cctype>
#include <filesystem>

#include "util/json.h"
#include "util/strings.h"

namespace reel {
namespace {

namespace fs = std::filesystem;

struct Candidate {
  const char* suffix;
  const char* origin;
};
// Order matters only for display; the original captioner ranks texts itself.
constexpr Candidate kCandidates[] = {
    {".txt", "txt"}, {".json", "json"}, {".info.json", "json"}, {".srt", "srt"}};

std::string SidecarPath(const std::string& video_path, const char* suffix) {
  const fs::path p(video_path);
  return (p.parent_path() / p.stem()).string() + suffix;
}

Result<std::string> ReadCapped(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::IOError(path + ": cannot stat");
  if (st.st_size > kMaxSidecarBytes) {
    return Status::InvalidArgument(path + ": " + std::to_string(st.st_size) +
                                   " bytes, more than a sidecar may have (" +
                                   std::to_string(kMaxSidecarBytes) + ")");
  }
  return ReadFile(path);
}

std::string StripBom(std::string s) {
  if (s.size() >= 3 && static_cast<unsigned char>(s[0]) == 0xEF &&
      static_cast<unsigned char>(s[1]) == 0xBB && static_cast<unsigned char>(s[2]) == 0xBF) {
    s.erase(0, 3);
  }
  return s;
}

// Collapses runs of whitespace (newlines included) to one space.
std::string Collapse(std::string_view s) {
  std::string out;
  bool space = false;
  for (char ch : s) {
    if (std::isspace(static_cast<unsigned char>(ch))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
  }
  return out;
}

// Removes <...> tags and {...} override blocks from a subtitle line.
std::string StripMarkup(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char close = s[i] == '<' ? '>' : s[i] == '{' ? '}' : '\0';
    if (close != '\0') {
      const size_t end = s.find(close, i + 1);
      if (end != std::string_view::npos) {
        i = end;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// "HH:MM:SS,mmm" (or '.', or fewer/more fraction digits) -> seconds.
bool ParseSrtTime(std::string_view s, Rational* out) {
  s = Trim(s);
  int64_t parts[3] = {0, 0, 0};
  int part = 0;
  size_t i = 0;
  for (; i < s.size() && part < 3; ++i) {
    const char ch = s[i];
    if (std::isdigit(static_cast<unsigned char>(ch))) {
      parts[part] = parts[part] * 10 + (ch - '0');
      if (parts[part] > 1000000) return false;
    } else if (ch == ':' && part < 2) {
      ++part;
    } else if ((ch == ',' || ch == '.') && part == 2) {
      ++part;
      ++i;  // past the separator
      break;
    } else {
      return false;
    }
  }
  if (part < 2) return false;
  int64_t frac = 0, den = 1;
  for (; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    if (den < 1000000) {
      frac = frac * 10 + (s[i] - '0');
      den *= 10;
    }
  }
  if (parts[1] > 59 || parts[2] > 59) return false;
  *out = Rational((parts[0] * 3600 + parts[1] * 60 + parts[2]) * den + frac, den);
  return true;
}

void AddJsonFields(const Json& obj, const std::string& file, const char* const* keys,
                   std::vector<VideoText>* out) {
  for (const char* const* k = keys; *k != nullptr; ++k) {
    const Json* v = obj.Find(*k);
    if (v == nullptr || !v->is_string()) continue;
    const std::string text(Trim(v->as_string()));
    if (text.empty()) continue;
    VideoText t;
    t.origin = "json";
    t.field = *k;
    t.text = text;
    t.file = file;
    // A field met twice (top level and under "info") keeps the first.
    bool seen = false;
    for (const VideoText& o : *out) seen = seen || (o.file == file && o.field == t.field);
    if (!seen) out->push_back(std::move(t));
  }
}

}  // namespace

std::vector<std::string> SidecarFiles(const std::string& video_path) {
  std::vector<std::string> out;
  for (const Candidate& c : kCandidates) {
    const std::string p = SidecarPath(video_path, c.suffix);
    if (p == video_path) continue;  // a video named x.txt is not its own sidecar
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back(p);
  }
  return out;
}

std::string SidecarStamp(const std::string& video_path) {
  std::string stamp;
  for (const std::string& p : SidecarFiles(video_path)) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) continue;
    const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (!stamp.empty()) stamp += ';';
    stamp += fs::path(p).filename().string() + ":" + std::to_string(st.st_size) + ":" +
             std::to_string(mtime);
  }
  return stamp;
}

SidecarTexts ReadSidecars(const std::string& video_path) {
  SidecarTexts out;
  out.stamp = SidecarStamp(video_path);
  static const char* const kJsonKeys[] = {"caption", "text",    "description",
                                          "title",   "summary", nullptr};
  for (const std::string& file : SidecarFiles(video_path)) {
    Result<std::string> content = ReadCapped(file);
    if (!content.ok()) {
      out.warnings.push_back(content.status().message());
      continue;
    }
    Result<std::string> decoded = TextAsUtf8(std::move(content).value(), file);
    if (!decoded.ok()) {
      out.warnings.push_back(decoded.status().message());
      continue;
    }
    const std::string& text = *decoded;
    if (EndsWith(file, ".srt")) {
      Result<std::vector<SubtitleCue>> cues = ParseSrt(text);
      if (!cues.ok()) {
        out.warnings.push_back(file + ": " + cues.status().message());
        continue;
      }
      for (const SubtitleCue& cue : *cues) {
        VideoText t;
        t.origin = "srt";
        t.seq = cue.seq;
        t.start_time = cue.start;
        t.end_time = cue.end;
        t.text = cue.text;
        t.file = file;
        out.texts.push_back(std::move(t));
      }
    } else if (EndsWith(file, ".json")) {
      Result<Json> json = Json::Parse(text);
      if (!json.ok()) {
        out.warnings.push_back(file + ": not valid JSON (" + json.status().message() + ")");
        continue;
      }
      if (!json->is_object()) {
        out.warnings.push_back(file + ": not a JSON object");
        continue;
      }
      AddJsonFields(*json, file, kJsonKeys, &out.texts);
      if (const Json* info = json->Find("info"); info != nullptr && info->is_object()) {
        AddJsonFields(*info, file, kJsonKeys, &out.texts);
      }
      if (const Json* yt = json->Find("yt_meta_dict"); yt != nullptr) {
        if (const Json* info = yt->Find("info"); info != nullptr && info->is_object()) {
          AddJsonFields(*info, file, kJsonKeys, &out.texts);
        }
      }
    } else {
      const std::string body(Trim(text));
      if (body.empty()) continue;
      VideoText t;
      t.origin = "txt";
      t.text = body;
      t.file = file;
      out.texts.push_back(std::move(t));
    }
  }
  return out;
}

Result<std::vector<SubtitleCue>> ParseSrt(std::string_view text) {
  std::vector<SubtitleCue> cues;
  std::vector<std::string> lines;
  for (std::string& line : Split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  if (!lines.empty()) lines[0] = StripBom(lines[0]);
  size_t i = 0;
  int64_t seq = 0;
  while (i < lines.size()) {
    while (i < lines.size() && Trim(lines[i]).empty()) ++i;
    if (i >= lines.size()) break;
    // An optional cue number, then the time line.
    if (lines[i].find("-->") == std::string::npos) ++i;
    if (i >= lines.size()) {
      return Status::InvalidArgument("line " + std::to_string(i) + ": a cue without a time line");
    }
    const std::string& timing = lines[i];
    const size_t arrow = timing.find("-->");
    if (arrow == std::string::npos) {
      return Status::InvalidArgument("line " + std::to_string(i + 1) +
                                     ": expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm', got '" + timing +
                                     "'");
    }
    // Positioning hints may follow the end time ("00:00:02,000 X1:40 ...").
    std::string_view end_part = std::string_view(timing).substr(arrow + 3);
    end_part = Trim(end_part);
    const size_t space = end_part.find(' ');
    if (space != std::string_view::npos) end_part = end_part.substr(0, space);
    SubtitleCue cue;
    if (!ParseSrtTime(std::string_view(timing).substr(0, arrow), &cue.start) ||
        !ParseSrtTime(end_part, &cue.end)) {
      return Status::InvalidArgument("line " + std::to_string(i + 1) + ": bad time line '" +
                                     timing + "'");
    }
    ++i;
    std::string body;
    while (i < lines.size() && !Trim(lines[i]).empty()) {
      if (!body.empty()) body += ' ';
      body += StripMarkup(lines[i]);
      ++i;
    }
    cue.seq = ++seq;
    cue.text = Collapse(body);
    if (!cue.text.empty() && cue.end > cue.start) cues.push_back(std::move(cue));
  }
  return cues;
}

}  // namespace reel
