#include "net/http_client.h"

#include <curl/curl.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "util/strings.h"

namespace reel {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t WriteToString(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t CollectHeader(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    (*headers)[ToLower(Trim(line.substr(0, colon)))] = std::string(Trim(line.substr(colon + 1)));
  } else if (StartsWith(line, "HTTP/")) {
    headers->clear();  // a new response (after a redirect or 100-continue)
  }
  return size * n;
}

Status CurlError(CURLcode code, const std::string& url, double timeout) {
  std::string what = curl_easy_strerror(code);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Unavailable(url + ": timed out after " + FormatFixed(timeout, 0) + " s");
    case CURLE_COULDNT_CONNECT:
      return Status::Unavailable(url + ": connection refused or unreachable");
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Status::Unavailable(url + ": cannot resolve the host (is there a network?)");
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Status::InvalidArgument(url + ": " + what);
    default:
      return Status::Unavailable(url + ": " + what);
  }
}

struct Easy {
  CURL* h;
  curl_slist* headers = nullptr;
  Easy() : h(curl_easy_init()) {}
  ~Easy() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
  }
};

}  // namespace

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(ToLower(name));
  return it == headers.end() ? "" : it->second;
}

Result<HttpResponse> HttpSend(const HttpRequest& r) {
  GlobalInit();
  Easy e;
  if (e.h == nullptr) return Status::Internal("curl_easy_init failed");
  HttpResponse resp;
  curl_easy_setopt(e.h, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e.h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout_seconds * 1000));
  curl_easy_setopt(e.h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout_seconds * 1000));
  curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, WriteToString);
  curl_easy_setopt(e.h, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(e.h, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(e.h, CURLOPT_HEADERDATA, &resp.headers);
  curl_easy_setopt(e.h, CURLOPT_USERAGENT, "reel");
  for (const auto& [k, v] : r.headers) e.headers = curl_slist_append(e.headers, (k + ": " + v).c_str());
  e.headers = curl_slist_append(e.headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(e.h, CURLOPT_HTTPHEADER, e.headers);
  if (r.method == "POST") {
    curl_easy_setopt(e.h, CURLOPT_POST, 1L);
    curl_easy_setopt(e.h, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(e.h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
  } else if (r.method != "GET") {
    curl_easy_setopt(e.h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  const CURLcode code = curl_easy_perform(e.h);
  if (code != CURLE_OK) return CurlError(code, r.url, r.timeout_seconds);
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

namespace {

struct DownloadState {
  std::FILE* file = nullptr;
  const std::function<void(int64_t, int64_t)>* progress = nullptr;
  int64_t written = 0;
};

size_t WriteToFile(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<DownloadState*>(user);
  const size_t w = std::fwrite(data, 1, size * n, s->file);
  s->written += static_cast<int64_t>(w);
  return w;
}

int Progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* s = static_cast<DownloadState*>(user);
  if (s->progress != nullptr && *s->progress) (*s->progress)(now, total > 0 ? total : -1);
  return 0;
}

}  // namespace

Status HttpDownload(const std::string& url, const std::string& path,
                    const std::function<void(int64_t, int64_t)>& progress, double timeout) {
  GlobalInit();
  const std::string partial = path + ".partial";
  DownloadState state;
  state.file = std::fopen(partial.c_str(), "wb");
  if (state.file == nullptr) return Status::IOError(partial + ": cannot create");
  state.progress = &progress;
  Easy e;
  curl_easy_setopt(e.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e.h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e.h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout * 1000));
  curl_easy_setopt(e.h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(e.h, CURLOPT_WRITEFUNCTION, WriteToFile);
  curl_easy_setopt(e.h, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(e.h, CURLOPT_XFERINFOFUNCTION, Progress);
  curl_easy_setopt(e.h, CURLOPT_XFERINFODATA, &state);
  curl_easy_setopt(e.h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e.h, CURLOPT_USERAGENT, "reel");
  const CURLcode code = curl_easy_perform(e.h);
  long status = 0;
  curl_easy_getinfo(e.h, CURLINFO_RESPONSE_CODE, &status);
  const bool closed = std::fclose(state.file) == 0;
  if (code != CURLE_OK || status < 200 || status >= 300 || !closed) {
    std::remove(partial.c_str());
    if (code != CURLE_OK) return CurlError(code, url, timeout);
    if (!closed) return Status::IOError(partial + ": write failed");
    return Status::Unavailable(url + ": HTTP " + std::to_string(status));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    return Status::IOError(path + ": cannot rename the download into place");
  }
  return Status::OK();
}

double ParseRetryAfter(const std::string& value) {
  const std::string_view v = Trim(value);
  if (v.empty()) return -1;
  bool digits = true;
  for (char c : v) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (digits) return std::stod(std::string(v));
  // HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  if (strptime(std::string(v).c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return -1;
  const std::time_t when = timegm(&tm);
  const double wait = std::difftime(when, std::time(nullptr));
  return wait > 0 ? wait : 0;
}

}  // namespace reel
