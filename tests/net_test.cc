// Tests for net/: the HTTP client against a local test server.

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>

#include "net/http_client.h"
#include "tests/support/http_server.h"
#include "tests/support/test_support.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {
namespace {

using testing::HttpTestRequest;
using testing::HttpTestResponse;
using testing::TestHttpServer;

TEST(HttpClientTest, SendsMethodHeadersAndBody) {
  TestHttpServer server([](const HttpTestRequest& r) {
    HttpTestResponse resp;
    resp.status = r.path == "/missing" ? 404 : 200;
    resp.headers["X-Echo"] = r.headers.count("x-token") ? r.headers.at("x-token") : "";
    resp.body = r.method + " " + r.path + " " + r.body;
    return resp;
  });
  HttpRequest get;
  get.url = server.Url("/hello");
  get.headers = {{"X-Token", "abc"}};
  auto r = HttpSend(get);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello ");
  EXPECT_EQ(r->Header("x-echo"), "abc");
  EXPECT_EQ(r->Header("X-ECHO"), "abc");

  HttpRequest post;
  post.method = "POST";
  post.url = server.Url("/v1/chat/completions");
  post.headers = {{"Content-Type", "application/json"}};
  post.body = "{\"a\":1}";
  r = HttpSend(post);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "POST /v1/chat/completions {\"a\":1}");
  EXPECT_EQ(server.requests().back().headers.at("content-type"), "application/json");

  get.url = server.Url("/missing");
  r = HttpSend(get);
  ASSERT_TRUE(r.ok());  // HTTP errors are responses, not failures
  EXPECT_EQ(r->status, 404);
}

TEST(HttpClientTest, TimeoutsAndRefusedConnectionsAreUnavailable) {
  TestHttpServer slow([](const HttpTestRequest&) {
    HttpTestResponse resp;
    resp.delay_seconds = 3;
    return resp;
  });
  HttpRequest r;
  r.url = slow.Url("/");
  r.timeout_seconds = 0.3;
  auto timed_out = HttpSend(r);
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(timed_out.status().message().find("timed out"), std::string::npos);

  r.url = "http://127.0.0.1:" + std::to_string(testing::UnusedPort()) + "/";
  auto refused = HttpSend(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("refused"), std::string::npos)
      << refused.status().message();

  r.url = "nonsense://x";
  EXPECT_FALSE(HttpSend(r).ok());
}

TEST(HttpClientTest, DownloadsToAFileOrLeavesNothing) {
  const std::string payload(300000, 'z');
  TestHttpServer server([&](const HttpTestRequest& r) {
    HttpTestResponse resp;
    if (r.path == "/file") {
      resp.body = payload;
    } else {
      resp.status = 404;
    }
    return resp;
  });
  testing::TempDir dir;
  int64_t last = 0;
  Status s = HttpDownload(server.Url("/file"), dir.File("f.bin"),
                          [&](int64_t now, int64_t) { last = now; });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*Sha256File(dir.File("f.bin")), Sha256Hex(payload));
  EXPECT_EQ(last, static_cast<int64_t>(payload.size()));
  s = HttpDownload(server.Url("/gone"), dir.File("g.bin"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("HTTP 404"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.File("g.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.File("g.bin.partial")));
}

TEST(HttpClientTest, RetryAfter) {
  EXPECT_EQ(ParseRetryAfter("7"), 7);
  EXPECT_EQ(ParseRetryAfter(" 0 "), 0);
  EXPECT_EQ(ParseRetryAfter(""), -1);
  EXPECT_EQ(ParseRetryAfter("soon"), -1);
  char date[64];
  const std::time_t in_ten = std::time(nullptr) + 10;
  std::tm tm{};
  gmtime_r(&in_ten, &tm);
  std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  EXPECT_NEAR(ParseRetryAfter(date), 10, 2);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"), 0);  // in the past
}

}  // namespace
}  // namespace reel
