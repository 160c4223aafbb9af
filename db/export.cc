#include "db/export.h"

#include <algorithm>

#include "util/json.h"
#include "util/strings.h"

namespace reel {
namespace {

bool IsJsonColumn(const std::string& name) {
  return name == "metadata" || name == "params" || name == "config" || name == "details";
}

std::string CellText(const SqlValue& v) {
  if (std::holds_alternative<std::nullptr_t>(v)) return "";
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return FormatJsonNumber(*d);
  return std::get<std::string>(v);
}

Json CellJson(const SqlValue& v, bool json_column) {
  if (std::holds_alternative<std::nullptr_t>(v)) return Json();
  if (const auto* i = std::get_if<int64_t>(&v)) return Json(*i);
  if (const auto* d = std::get_if<double>(&v)) return Json(*d);
  const std::string& s = std::get<std::string>(v);
  if (json_column) {
    Result<Json> parsed = Json::Parse(s);
    if (parsed.ok()) return *parsed;
  }
  return Json(s);
}

Status StreamStatus(const std::ostream& out) {
  return out.good() ? Status::OK() : Status::IOError("write to output failed");
}

class CsvWriter : public RowWriter {
 public:
  explicit CsvWriter(std::ostream& out) : out_(out) {}
  Status Columns(const std::vector<std::string>& names) override {
    std::vector<SqlValue> header(names.begin(), names.end());
    return Row(header);
  }
  Status Row(const std::vector<SqlValue>& values) override {
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out_ << ',';
      const std::string text = CellText(values[i]);
      if (text.find_first_of(",\"\r\n") != std::string::npos) {
        out_ << '"';
        for (char c : text) {
          if (c == '"') out_ << '"';
          out_ << c;
        }
        out_ << '"';
      } else {
        out_ << text;
      }
    }
    out_ << "\r\n";
    return StreamStatus(out_);
  }
  Status Finish() override {
    out_.flush();
    return StreamStatus(out_);
  }

 private:
  std::ostream& out_;
};

class JsonWriter : public RowWriter {
 public:
  JsonWriter(std::ostream& out, bool lines) : out_(out), lines_(lines) {}
  Status Columns(const std::vector<std::string>& names) override {
    names_ = names;
    if (!lines_) out_ << '[';
    return StreamStatus(out_);
  }
  Status Row(const std::vector<SqlValue>& values) override {
    Json obj = Json::MakeObject();
    for (size_t i = 0; i < values.size() && i < names_.size(); ++i) {
      obj[names_[i]] = CellJson(values[i], IsJsonColumn(names_[i]));
    }
    if (!lines_) out_ << (rows_ == 0 ? "\n" : ",\n");
    out_ << obj.Dump();
    if (lines_) out_ << '\n';
    ++rows_;
    return StreamStatus(out_);
  }
  Status Finish() override {
    if (!lines_) out_ << (rows_ == 0 ? "]\n" : "\n]\n");
    out_.flush();
    return StreamStatus(out_);
  }

 private:
  std::ostream& out_;
  bool lines_;
  std::vector<std::string> names_;
  int64_t rows_ = 0;
};

// Aligned columns for people; cells are cut at kMaxCell characters.
class TextTableWriter : public RowWriter {
 public:
  explicit TextTableWriter(std::ostream& out) : out_(out) {}
  Status Columns(const std::vector<std::string>& names) override {
    rows_.push_back(names);
    return Status::OK();
  }
  Status Row(const std::vector<SqlValue>& values) override {
    std::vector<std::string> cells;
    cells.reserve(values.size());
    for (const auto& v : values) {
      std::string text = std::holds_alternative<std::nullptr_t>(v) ? "NULL" : CellText(v);
      std::replace(text.begin(), text.end(), '\n', ' ');
      if (text.size() > kMaxCell) text = text.substr(0, kMaxCell - 3) + "...";
      cells.push_back(std::move(text));
    }
    rows_.push_back(std::move(cells));
    return Status::OK();
  }
  Status Finish() override {
    if (rows_.empty()) return Status::OK();
    std::vector<size_t> widths(rows_.front().size(), 0);
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size() && i < widths.size(); ++i) {
        widths[i] = std::max(widths[i], r[i].size());
      }
    }
    for (size_t ri = 0; ri < rows_.size(); ++ri) {
      const auto& r = rows_[ri];
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        if (i > 0) line += "  ";
        line += r[i];
        if (i + 1 < r.size()) line.append(widths[i] - r[i].size(), ' ');
      }
      out_ << line << '\n';
      if (ri == 0) {
        std::string rule;
        for (size_t i = 0; i < widths.size(); ++i) {
          if (i > 0) rule += "  ";
          rule.append(widths[i], '-');
        }
        out_ << rule << '\n';
      }
    }
    out_ << "(" << rows_.size() - 1 << (rows_.size() == 2 ? " row)" : " rows)") << '\n';
    out_.flush();
    return StreamStatus(out_);
  }

 private:
  static constexpr size_t kMaxCell = 60;
  std::ostream& out_;
  std::vector<std::vector<std::string>> rows_;
};

// SQL text for a rational stored as two columns: "num/den", or "num" when den is 1.
std::string RationalSql(const std::string& num, const std::string& den, const std::string& as) {
  return "CASE WHEN " + den + " IS NULL OR " + den + " = 0 THEN NULL WHEN " + den +
         " = 1 THEN CAST(" + num + " AS TEXT) ELSE " + num + " || '/' || " + den + " END AS " + as;
}

std::string SecondsSql(const std::string& num, const std::string& den, const std::string& as) {
  return "CAST(" + num + " AS REAL) / NULLIF(" + den + ", 0) AS " + as;
}

std::string ExportSql(ExportWhat what) {
  switch (what) {
    case ExportWhat::kVideos:
      return "SELECT id, path, status, error, duplicate_of, size_bytes, content_hash, container, "
             "codec, pixel_format, width, height, " +
             RationalSql("sar_num", "sar_den", "sample_aspect_ratio") + ", rotation, " +
             RationalSql("fps_num", "fps_den", "frame_rate") + ", vfr, frame_count, " +
             RationalSql("start_num", "start_den", "start_time") + ", " +
             RationalSql("duration_num", "duration_den", "duration") +
             ", duration_seconds, has_audio, bit_rate, metadata, ingested_at, updated_at "
             "FROM videos ORDER BY id";
    case ExportWhat::kClips:
      return "SELECT c.id, c.video_id, v.path, c.start_frame, c.end_frame, "
             "c.end_frame - c.start_frame AS frames, " +
             RationalSql("c.start_num", "c.start_den", "start_time") + ", " +
             RationalSql("c.end_num", "c.end_den", "end_time") + ", " +
             SecondsSql("c.start_num", "c.start_den", "start_seconds") + ", " +
             SecondsSql("c.end_num", "c.end_den", "end_seconds") +
             ", c.duration_seconds, c.state, c.created_at "
             "FROM clips c JOIN videos v ON v.id = c.video_id ORDER BY c.video_id, c.start_frame";
    case ExportWhat::kCaptions:
      return "SELECT k.id, k.clip_id, v.path, c.start_frame, c.end_frame, k.text, k.source, "
             "k.model, k.prompt, k.params, k.run_id, k.created_at, "
             "(SELECT json_group_object(s.name || ':' || s.model, s.value) FROM caption_scores s "
             "WHERE s.caption_id = k.id) AS scores FROM captions k "
             "JOIN clips c ON c.id = k.clip_id JOIN videos v ON v.id = c.video_id ORDER BY k.id";
    case ExportWhat::kRuns:
      return "SELECT id, kind, status, error, started_at, finished_at, tool_version, pid, host, "
             "config FROM runs ORDER BY id";
    case ExportWhat::kMetrics:
      return "SELECT m.id, m.run_id, r.kind AS run_kind, m.name, m.value, m.details "
             "FROM metrics m JOIN runs r ON r.id = m.run_id ORDER BY m.id";
  }
  return "";
}

}  // namespace

Result<TableFormat> ParseTableFormat(std::string_view name) {
  if (name == "csv") return TableFormat::kCsv;
  if (name == "jsonl") return TableFormat::kJsonl;
  if (name == "json") return TableFormat::kJson;
  if (name == "table") return TableFormat::kTable;
  return Status::InvalidArgument("unknown format '" + std::string(name) +
                                 "' (expected csv, jsonl, json or table)");
}

std::unique_ptr<RowWriter> MakeRowWriter(TableFormat format, std::ostream& out) {
  switch (format) {
    case TableFormat::kCsv:
      return std::make_unique<CsvWriter>(out);
    case TableFormat::kJsonl:
      return std::make_unique<JsonWriter>(out, true);
    case TableFormat::kJson:
      return std::make_unique<JsonWriter>(out, false);
    case TableFormat::kTable:
      return std::make_unique<TextTableWriter>(out);
  }
  return std::make_unique<CsvWriter>(out);
}

Result<ExportWhat> ParseExportWhat(std::string_view name) {
  if (name == "videos") return ExportWhat::kVideos;
  if (name == "clips") return ExportWhat::kClips;
  if (name == "captions") return ExportWhat::kCaptions;
  if (name == "runs") return ExportWhat::kRuns;
  if (name == "metrics") return ExportWhat::kMetrics;
  return Status::InvalidArgument("unknown table '" + std::string(name) +
                                 "' (expected videos, clips, captions, runs or metrics)");
}

Status ExportTable(Catalog& catalog, ExportWhat what, RowWriter& writer) {
  REEL_RETURN_IF_ERROR(catalog.QueryReadOnly(
      ExportSql(what), [&](const std::vector<std::string>& names) { return writer.Columns(names); },
      [&](const std::vector<SqlValue>& row) { return writer.Row(row); }));
  return writer.Finish();
}

}  // namespace reel
