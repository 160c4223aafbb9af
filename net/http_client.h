// A small HTTP client over libcurl: one request, or a download to a file.
//
// Failures of the transport are Status values with codes the callers can act on:
// kUnavailable for a refused connection, an unresolvable host, a timeout or a broken
// transfer (all worth retrying), kInvalidArgument for a malformed URL. HTTP error
// statuses are not failures here: the response carries them.
//
// Thread-safety: independent calls may run concurrently (each uses its own handle).

#ifndef REEL_NET_HTTP_CLIENT_H_
#define REEL_NET_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace reel {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double timeout_seconds = 120;  // whole transfer
  double connect_timeout_seconds = 10;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  // The value of a header, or "" when absent.
  std::string Header(const std::string& name) const;
};

Result<HttpResponse> HttpSend(const HttpRequest& request);

// Downloads `url` to `path` (via "<path>.partial", renamed when complete); `progress`
// gets (bytes so far, total or -1). Fails on HTTP statuses other than 2xx.
Status HttpDownload(const std::string& url, const std::string& path,
                    const std::function<void(int64_t, int64_t)>& progress = {},
                    double timeout_seconds = 3600);

// Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); -1 if absent
// or unparseable.
double ParseRetryAfter(const std::string& value);

}  // namespace reel

#endif  // REEL_NET_HTTP_CLIENT_H_
