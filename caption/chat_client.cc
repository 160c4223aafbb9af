#include "caption/chat_client.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "caption/template.h"
#include "net/http_client.h"
#include "util/strings.h"

namespace reel {
namespace {

using Clock = std::chrono::steady_clock;

double Jitter() {
  thread_local std::mt19937 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.8, 1.2)(rng);
}

// Sleeps up to `seconds`, waking early on cancel. Returns false when cancelled.
bool Wait(double seconds, const std::atomic<bool>* cancel) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (cancel != nullptr && cancel->load()) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
  return cancel == nullptr || !cancel->load();
}

std::string Excerpt(const std::string& body) {
  std::string s = TidyText(body);
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return s;
}

// The message content: a string, or an array of {type: text, text} parts.
std::string ContentText(const Json& content) {
  if (content.is_string()) return content.as_string();
  std::string out;
  for (const Json& part : content.as_array()) {
    const Json* text = part.Find("text");
    if (text != nullptr && text->is_string()) out += text->as_string();
  }
  return out;
}

// Parses a 200 reply; an error means "malformed" (retried).
Result<ChatReply> ParseReply(const std::string& body) {
  Result<Json> json = Json::Parse(body);
  if (!json.ok())
    return Status::Corruption("malformed JSON in the reply (" + json.status().message() + ")");
  const Json* choices = json->Find("choices");
  if (choices == nullptr || !choices->is_array() || choices->size() == 0) {
    return Status::Corruption("the reply has no choices");
  }
  const Json& first = choices->at(0);
  const Json* message = first.Find("message");
  const Json* content = message != nullptr ? message->Find("content") : nullptr;
  if (content == nullptr)
    return Status::Corruption("the reply's first choice has no message content");
  ChatReply reply;
  reply.content = std::string(Trim(ContentText(*content)));
  if (reply.content.empty()) return Status::Corruption("the reply's message is empty");
  if (const Json* f = first.Find("finish_reason"); f != nullptr)
    reply.finish_reason = f->as_string();
  if (const Json* m = json->Find("model"); m != nullptr) reply.model = m->as_string();
  if (const Json* u = json->Find("usage"); u != nullptr && u->is_object()) reply.usage = *u;
  return reply;
}

}  // namespace

Json ChatRequestBody(const ChatRequest& r) {
  Json body = Json::MakeObject();
  body["model"] = r.model;
  Json messages = Json::MakeArray();
  if (!r.system.empty()) {
    Json m = Json::MakeObject();
    m["role"] = "system";
    m["content"] = r.system;
    messages.push_back(m);
  }
  Json user = Json::MakeObject();
  user["role"] = "user";
  if (r.image_urls.empty()) {
    user["content"] = r.text;
  } else {
    Json parts = Json::MakeArray();
    Json text = Json::MakeObject();
    text["type"] = "text";
    text["text"] = r.text;
    parts.push_back(text);
    for (const std::string& url : r.image_urls) {
      Json image = Json::MakeObject();
      image["type"] = "image_url";
      Json u = Json::MakeObject();
      u["url"] = url;
      image["image_url"] = u;
      parts.push_back(image);
    }
    user["content"] = parts;
  }
  messages.push_back(user);
  body["messages"] = messages;
  body["max_tokens"] = r.max_tokens;
  body["temperature"] = r.temperature;
  body["stream"] = false;
  return body;
}

std::string ChatCompletionsUrl(const std::string& base) {
  std::string url = base;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (EndsWith(url, "/chat/completions")) return url;
  return url + "/chat/completions";
}

std::string RedactUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t host_start = scheme + 3;
  const size_t path = url.find('/', host_start);
  const size_t at = url.rfind('@', path == std::string::npos ? url.size() : path);
  if (at == std::string::npos || at < host_start) return url;
  return url.substr(0, host_start) + url.substr(at + 1);
}

Result<ChatReply> SendChat(const ChatEndpointParams& endpoint, const ChatRequest& request,
                           const std::atomic<bool>* cancel, int* attempts_out) {
  const auto start = Clock::now();
  HttpRequest http;
  http.method = "POST";
  http.url = ChatCompletionsUrl(endpoint.url);
  http.body = ChatRequestBody(request).Dump();
  http.headers.push_back({"Content-Type", "application/json"});
  if (!endpoint.api_key.empty()) {
    http.headers.push_back({"Authorization", "Bearer " + endpoint.api_key});
  }
  http.timeout_seconds = endpoint.timeout_seconds;
  const std::string shown_url = RedactUrl(http.url);
  auto scrub = [&](std::string message) {
    if (shown_url != http.url) {
      for (size_t p = message.find(http.url); p != std::string::npos; p = message.find(http.url)) {
        message.replace(p, http.url.size(), shown_url);
      }
    }
    return message;
  };

  const int max_attempts = 1 + std::max(0, endpoint.retries);
  Status last = Status::Cancelled("cancelled");
  int made = 0;  // requests sent
  while (made < max_attempts) {
    if (cancel != nullptr && cancel->load()) {
      last = Status::Cancelled("cancelled");
      break;
    }
    ++made;
    double retry_after = -1;
    Result<HttpResponse> response = HttpSend(http);
    if (!response.ok()) {
      last = Status(response.status().code(), scrub(response.status().message()));
      if (response.status().code() != StatusCode::kUnavailable) break;  // e.g. a malformed URL
    } else if (response->status == 200) {
      Result<ChatReply> reply = ParseReply(response->body);
      if (reply.ok()) {
        reply->attempts = made;
        reply->seconds = std::chrono::duration<double>(Clock::now() - start).count();
        if (attempts_out != nullptr) *attempts_out = made;
        return reply;
      }
      last = Status::Corruption(shown_url + ": " + reply.status().message() + ": " +
                                Excerpt(response->body));
    } else {
      const long code = response->status;
      const bool retryable = code == 408 || code == 409 || code == 429 || code >= 500;
      if (!retryable) {
        std::string hint;
        if (code == 401 || code == 403) hint = " (check the API key)";
        if (code == 404) hint = " (check the endpoint URL and the model name)";
        last = Status::FailedPrecondition(shown_url + ": HTTP " + std::to_string(code) + hint +
                                          ": " + Excerpt(response->body));
        break;
      }
      last = Status::Unavailable(shown_url + ": HTTP " + std::to_string(code) + ": " +
                                 Excerpt(response->body));
      retry_after = ParseRetryAfter(response->Header("retry-after"));
    }
    if (made == max_attempts) break;
    double wait = retry_after >= 0
                      ? retry_after
                      : endpoint.retry_wait_seconds * std::pow(2.0, made - 1) * Jitter();
    wait = std::min(wait, endpoint.max_retry_wait_seconds);
    if (!Wait(wait, cancel)) {
      last = Status::Cancelled("cancelled while waiting to retry (" + last.message() + ")");
      break;
    }
  }
  if (attempts_out != nullptr) *attempts_out = made;
  return Status(last.code(), last.message() + " (after " + std::to_string(made) +
                                 (made == 1 ? " attempt)" : " attempts)"));
}

}  // namespace reel
