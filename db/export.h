// Writing catalog rows out: CSV, JSON Lines, a JSON array, or an aligned text table.
//
// `reel db export` and `reel db query` both stream rows through a RowWriter, so every
// format behaves the same for both. CSV follows RFC 4180 (quotes doubled, fields with
// separators, quotes or line breaks quoted). In JSON formats, integers and reals stay
// numbers, NULL is null, and columns holding JSON text (metadata, params, config,
// details) are embedded as JSON values rather than strings.
//
// Thread-safety: a RowWriter writes to one stream from one thread.

#ifndef REEL_DB_EXPORT_H_
#define REEL_DB_EXPORT_H_

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"

namespace reel {

enum class TableFormat { kCsv, kJsonl, kJson, kTable };
Result<TableFormat> ParseTableFormat(std::string_view name);

class RowWriter {
 public:
  virtual ~RowWriter() = default;
  virtual Status Columns(const std::vector<std::string>& names) = 0;
  virtual Status Row(const std::vector<SqlValue>& values) = 0;
  virtual Status Finish() = 0;
};

// `out` must outlive the writer.
std::unique_ptr<RowWriter> MakeRowWriter(TableFormat format, std::ostream& out);

enum class ExportWhat { kVideos, kClips, kCaptions, kRuns, kMetrics };
Result<ExportWhat> ParseExportWhat(std::string_view name);

// Streams one table of the catalog, in a stable column order, through `writer`.
// Rationals are written both exactly ("30000/1001") and, for times, in seconds.
Status ExportTable(Catalog& catalog, ExportWhat what, RowWriter& writer);

}  // namespace reel

#endif  // REEL_DB_EXPORT_H_
