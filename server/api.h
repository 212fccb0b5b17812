// The OpenAI-compatible wire format: request bodies of /v1/chat/completions
// and /v1/completions checked and turned into GenerationParams, and the
// response, stream chunk and error objects.
//
//   ApiRequest req;  ApiError err;
//   if (!ParseChatRequest(ctx, body, &req, &err)) reply(err.status, ErrorJson(err));
//   ... queue req.gen, collect the text ...
//   reply(200, CompletionJson(ApiKind::kChat, id, created, model, text, "stop", usage));
//
// Validation follows OpenAI's rules for the fields it reads (messages,
// prompt, max_tokens / max_completion_tokens, temperature, top_p, stop, seed,
// n, stream, stream_options.include_usage); every error names the field in
// "param". Fields it does not use are ignored, as other servers do. A prompt
// that leaves no room in the context is 400 with code
// "context_length_exceeded"; max_tokens beyond the room left ends the reply
// with finish_reason "length" at the end of the context.
#ifndef MOESTREAM_SERVER_API_H_
#define MOESTREAM_SERVER_API_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "server/request_queue.h"
#include "server/text_codec.h"

namespace moestream::server {

enum class ApiKind { kChat, kCompletion };

// One OpenAI-style error: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" = null
  std::string code;   // "" = null
};
nlohmann::json ErrorJson(const ApiError& e);
// The error for an HTTP status without a more specific message (401, 404,
// 405, 413, 500, 503).
ApiError ErrorForStatus(int status);

struct ApiContext {
  const TextCodec* codec = nullptr;  // required
  int64_t n_ctx = 0;                 // positions of one sequence
  std::string model_id;              // what /v1/models lists and replies name
};

struct ApiRequest {
  GenerationParams gen;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// False with `err` set for a body that is not a valid request.
bool ParseChatRequest(const ApiContext& ctx, std::string_view body, ApiRequest* out, ApiError* err);
bool ParseCompletionRequest(const ApiContext& ctx, std::string_view body, ApiRequest* out,
                            ApiError* err);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The whole reply of a non-streamed request.
nlohmann::json CompletionJson(ApiKind kind, const std::string& id, int64_t created,
                              const std::string& model, const std::string& text,
                              const char* finish_reason, Usage usage);
// One stream chunk: `text` as the delta (the first chat chunk also carries
// the role); `finish_reason` null (nullptr) until the last.
nlohmann::json ChunkJson(ApiKind kind, const std::string& id, int64_t created,
                         const std::string& model, const std::string& text, bool first,
                         const char* finish_reason);
// The usage chunk sent after the last one with stream_options.include_usage.
nlohmann::json UsageChunkJson(ApiKind kind, const std::string& id, int64_t created,
                              const std::string& model, Usage usage);
// GET /v1/models.
nlohmann::json ModelsJson(const std::string& model, int64_t created);

// JSON text as sent: invalid UTF-8 from a model is replaced, never thrown.
std::string Dump(const nlohmann::json& j);

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_API_H_
