// A scriptable HTTP/1.1 server on 127.0.0.1 for tests: each request is answered by a
// handler (status, headers, body, an optional delay, or a dropped connection). It records
// every request and the largest number of requests in flight at once.

#ifndef REEL_TESTS_SUPPORT_HTTP_SERVER_H_
#define REEL_TESTS_SUPPORT_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace reel::testing {

struct HttpTestRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpTestResponse {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
  double delay_seconds = 0;  // before answering
  bool drop = false;         // close the connection without a response
};

class TestHttpServer {
 public:
  using Handler = std::function<HttpTestResponse(const HttpTestRequest&)>;
  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const;
  std::vector<HttpTestRequest> requests() const;
  int max_in_flight() const { return max_in_flight_.load(); }

 private:
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<HttpTestRequest> requests_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
};

// A port on 127.0.0.1 with nothing listening (for refused connections).
int UnusedPort();

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_HTTP_SERVER_H_
