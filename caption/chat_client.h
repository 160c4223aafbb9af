// A client for OpenAI-compatible chat completions (POST .../v1/chat/completions), as
// served by vLLM, llama.cpp's server, Ollama, SGLang, TGI and hosted APIs.
//
// Retry policy (documented for users in `reel caption --help`):
//   - retried: connection refused or reset, timeouts, HTTP 408, 409, 429 and 5xx, and
//     a 200 whose body is not a chat completion with a non-empty message (truncated or
//     malformed JSON from an overloaded server);
//   - not retried: any other 4xx (bad request, unknown model, authentication), answered
//     at once with the server's message;
//   - waits: Retry-After (seconds or an HTTP date) when the server sends one, capped at
//     max_retry_wait; otherwise retry_wait x 2^k with +-20% jitter, capped likewise;
//   - at most 1 + retries attempts; a cancel flag stops waiting at once.
// The API key goes only into the Authorization header: it is never part of a message,
// a log line or the catalog; URLs in messages have any user:password removed.
//
// Thread-safety: SendChat() may be called concurrently.

#ifndef REEL_CAPTION_CHAT_CLIENT_H_
#define REEL_CAPTION_CHAT_CLIENT_H_

#include <atomic>
#include <string>
#include <vector>

#include "caption/captioner.h"
#include "util/json.h"
#include "util/status.h"

namespace reel {

struct ChatRequest {
  std::string model;
  std::string system;                   // optional system message
  std::string text;                     // the user message's text
  std::vector<std::string> image_urls;  // data: URIs (or http URLs) after the text
  int max_tokens = 400;
  double temperature = 0.2;
};

struct ChatReply {
  std::string content;
  std::string finish_reason;
  std::string model;  // as the server names it
  Json usage;         // token counts, when the server reports them
  int attempts = 0;
  double seconds = 0;  // all attempts and waits
};

// The JSON body of a request (exposed for tests).
Json ChatRequestBody(const ChatRequest& request);
// ".../v1" -> ".../v1/chat/completions"; a URL already ending in /chat/completions stays.
std::string ChatCompletionsUrl(const std::string& base);
// The URL without user:password@.
std::string RedactUrl(const std::string& url);

// Sends with the retry policy above. On failure, *attempts (if given) says how many
// requests were made.
Result<ChatReply> SendChat(const ChatEndpointParams& endpoint, const ChatRequest& request,
                           const std::atomic<bool>* cancel, int* attempts = nullptr);

}  // namespace reel

#endif  // REEL_CAPTION_CHAT_CLIENT_H_
