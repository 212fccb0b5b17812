#include "server/api.h"

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moestream::server {
namespace {

using nlohmann::json;

bool Fail(ApiError* err, std::string param, std::string message, std::string code = "") {
  err->status = 400;
  err->type = "invalid_request_error";
  err->param = std::move(param);
  err->message = std::move(message);
  err->code = std::move(code);
  return false;
}

// A JSON integer (5, or 5.0) into `*v`.
bool AsInt(const json& j, int64_t* v) {
  if (j.is_number_integer()) {
    if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *v = j.get<int64_t>();
    return true;
  }
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e18) {
      *v = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

// The fields chat and completions share; `prompt_field` names the prompt in errors.
bool ParseCommon(const ApiContext& ctx, const json& j, const std::string& prompt_field,
                 ApiRequest* out, ApiError* err) {
  if (auto it = j.find("model"); it != j.end() && !it->is_string()) {
    return Fail(err, "model", "'model' must be a string");
  }
  if (auto it = j.find("stream"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return Fail(err, "stream", "'stream' must be a boolean");
    out->stream = it->get<bool>();
  }
  if (auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Fail(err, "stream_options", "'stream_options' must be an object");
    if (!out->stream) {
      return Fail(err, "stream_options", "'stream_options' is only allowed with 'stream': true");
    }
    if (auto u = it->find("include_usage"); u != it->end() && !u->is_null()) {
      if (!u->is_boolean()) {
        return Fail(err, "stream_options.include_usage", "'include_usage' must be a boolean");
      }
      out->include_usage = u->get<bool>();
    }
  }
  GenerationParams& g = out->gen;
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) continue;
    int64_t v = 0;
    if (!AsInt(*it, &v) || v < 1) {
      return Fail(err, name, absl::StrCat("'", name, "' must be an integer of at least 1"));
    }
    g.max_tokens = v;
  }
  if (auto it = j.find("temperature"); it != j.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() >= 0 && it->get<double>() <= 2)) {
      return Fail(err, "temperature", "'temperature' must be a number from 0 to 2");
    }
    g.temperature = it->get<double>();
  }
  if (auto it = j.find("top_p"); it != j.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() > 0 && it->get<double>() <= 1)) {
      return Fail(err, "top_p", "'top_p' must be a number above 0 and at most 1");
    }
    g.top_p = it->get<double>();
  }
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    int64_t v = 0;
    if (!AsInt(*it, &v) || v < 0) return Fail(err, "seed", "'seed' must be an integer >= 0");
    g.seed = v;
  }
  if (auto it = j.find("n"); it != j.end() && !it->is_null()) {
    int64_t v = 0;
    if (!AsInt(*it, &v) || v != 1) return Fail(err, "n", "'n' must be 1: one choice per request");
  }
  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      g.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (const json& s : *it) {
        if (!s.is_string()) return Fail(err, "stop", "'stop' must hold strings only");
        g.stop.push_back(s.get<std::string>());
      }
    } else {
      return Fail(err, "stop", "'stop' must be a string or an array of at most 4 strings");
    }
    for (const std::string& s : g.stop) {
      if (s.empty()) return Fail(err, "stop", "'stop' strings must not be empty");
    }
  }
  if (g.prompt.empty()) return Fail(err, prompt_field, "the prompt has no tokens");
  const int64_t n = static_cast<int64_t>(g.prompt.size());
  if (n >= ctx.n_ctx) {
    return Fail(err, prompt_field,
                absl::StrCat("the prompt is ", n, " tokens; this model's context is ", ctx.n_ctx,
                             " positions, and one must be left to generate in"),
                "context_length_exceeded");
  }
  return true;
}

json ParseBody(std::string_view body, ApiError* err, bool* ok) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  *ok = false;
  if (j.is_discarded()) {
    Fail(err, "", "the request body is not valid JSON");
  } else if (!j.is_object()) {
    Fail(err, "", "the request body must be a JSON object");
  } else {
    *ok = true;
  }
  return j;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
bool ContentText(const json& c, size_t i, std::string* text, ApiError* err) {
  const std::string param = absl::StrCat("messages[", i, "].content");
  if (c.is_string()) {
    *text = c.get<std::string>();
    return true;
  }
  if (c.is_array()) {
    for (const json& part : c) {
      auto type = part.is_object() ? part.find("type") : part.end();
      auto t = part.is_object() ? part.find("text") : part.end();
      if (!part.is_object() || type == part.end() || *type != "text" || t == part.end() ||
          !t->is_string()) {
        return Fail(err, param, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
      }
      *text += t->get<std::string>();
    }
    return true;
  }
  return Fail(err, param, "'content' must be a string or an array of text parts");
}

json UsageJson(Usage u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

const char* ObjectName(ApiKind kind, bool chunk) {
  if (kind == ApiKind::kChat) return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

}  // namespace

json ErrorJson(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

ApiError ErrorForStatus(int status) {
  ApiError e;
  e.status = status;
  switch (status) {
    case 401:
      e.message = "a valid API key is required: send 'Authorization: Bearer KEY'";
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      break;
    case 404: e.message = "no such endpoint"; break;
    case 405: e.message = "method not allowed on this endpoint"; break;
    case 413: e.message = "the request body is larger than the server's limit (--max-body)"; break;
    case 503:
      e.message = "the server is busy or shutting down";
      e.type = "server_error";
      break;
    default:
      e.message = absl::StrCat("the server could not handle the request (HTTP ", status, ")");
      e.type = status >= 500 ? "server_error" : "invalid_request_error";
  }
  return e;
}

bool ParseChatRequest(const ApiContext& ctx, std::string_view body, ApiRequest* out,
                      ApiError* err) {
  bool ok = false;
  const json j = ParseBody(body, err, &ok);
  if (!ok) return false;
  auto msgs = j.find("messages");
  if (msgs == j.end()) return Fail(err, "messages", "'messages' is required");
  if (!msgs->is_array() || msgs->empty()) {
    return Fail(err, "messages", "'messages' must be a non-empty array");
  }
  std::vector<text::ChatMessage> chat;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    if (!m.is_object()) return Fail(err, absl::StrCat("messages[", i, "]"), "a message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return Fail(err, absl::StrCat("messages[", i, "].role"), "'role' must be a string");
    }
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant") {
      return Fail(err, absl::StrCat("messages[", i, "].role"),
                  absl::StrCat("role '", r, "' is not one of system, developer, user, assistant"));
    }
    text::ChatMessage cm;
    cm.role = r == "developer" ? "system" : r;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      return Fail(err, absl::StrCat("messages[", i, "].content"), "'content' is required");
    }
    if (!ContentText(*content, i, &cm.content, err)) return false;
    chat.push_back(std::move(cm));
  }
  absl::StatusOr<std::vector<int32_t>> ids = ctx.codec->EncodeChat(chat);
  if (!ids.ok()) return Fail(err, "messages", std::string(ids.status().message()));
  out->gen.prompt = *std::move(ids);
  return ParseCommon(ctx, j, "messages", out, err);
}

bool ParseCompletionRequest(const ApiContext& ctx, std::string_view body, ApiRequest* out,
                            ApiError* err) {
  bool ok = false;
  const json j = ParseBody(body, err, &ok);
  if (!ok) return false;
  auto p = j.find("prompt");
  if (p == j.end()) return Fail(err, "prompt", "'prompt' is required");
  // A string, an array of one string, or an array of token ids.
  const json* text = nullptr;
  if (p->is_string()) {
    text = &*p;
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    text = &(*p)[0];
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    for (const json& id : *p) {
      int64_t v = 0;
      if (!AsInt(id, &v) || v < 0 || v >= ctx.codec->n_vocab()) {
        return Fail(err, "prompt",
                    absl::StrCat("token ids must be integers from 0 to ", ctx.codec->n_vocab() - 1));
      }
      out->gen.prompt.push_back(static_cast<int32_t>(v));
    }
  } else {
    return Fail(err, "prompt",
                "'prompt' must be a string, an array of one string, or an array of token ids");
  }
  if (text != nullptr) {
    absl::StatusOr<std::vector<int32_t>> ids = ctx.codec->EncodeText(text->get<std::string>());
    if (!ids.ok()) return Fail(err, "prompt", std::string(ids.status().message()));
    out->gen.prompt = *std::move(ids);
  }
  return ParseCommon(ctx, j, "prompt", out, err);
}

json CompletionJson(ApiKind kind, const std::string& id, int64_t created, const std::string& model,
                    const std::string& text, const char* finish_reason, Usage usage) {
  json choice = {{"index", 0}};
  if (kind == ApiKind::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
    choice["logprobs"] = nullptr;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = finish_reason;
  return {{"id", id},
          {"object", ObjectName(kind, false)},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})},
          {"usage", UsageJson(usage)}};
}

json ChunkJson(ApiKind kind, const std::string& id, int64_t created, const std::string& model,
               const std::string& text, bool first, const char* finish_reason) {
  json choice = {{"index", 0}};
  if (kind == ApiKind::kChat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || finish_reason == nullptr) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason == nullptr ? json(nullptr) : json(finish_reason);
  return {{"id", id},
          {"object", ObjectName(kind, true)},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

json UsageChunkJson(ApiKind kind, const std::string& id, int64_t created, const std::string& model,
                    Usage usage) {
  return {{"id", id},
          {"object", ObjectName(kind, true)},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", UsageJson(usage)}};
}

json ModelsJson(const std::string& model, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model},
                                 {"object", "model"},
                                 {"created", created},
                                 {"owned_by", "moestream"}}})}};
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace moestream::server
