#include "server/http_server.h"

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace moestream::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr absl::Duration kWaitSlice = absl::Milliseconds(100);
constexpr auto kLiveInterval = std::chrono::milliseconds(250);

int PortOf(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

// Tells whether the client of the connection a handler runs for has hung
// up. cpp-httplib 0.11 does not hand handlers the socket, so it is found
// once among this process's sockets by its two ports (the connection's
// socket stays open while its handler runs); then a poll for POLLRDHUP
// says whether the peer closed it.
class ConnectionWatch {
 public:
  explicit ConnectionWatch(const httplib::Request& req)
      : local_port_(req.local_port), remote_port_(req.remote_port) {}

  bool PeerClosed() {
    if (fd_ == -2) fd_ = Find();
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

 private:
  int Find() const {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    int found = -1;
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0') continue;
      struct stat st {};
      if (::fstat(int(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
      sockaddr_storage local{}, peer{};
      socklen_t ll = sizeof(local), pl = sizeof(peer);
      if (::getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
          ::getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0) {
        continue;
      }
      if (PortOf(local) == local_port_ && PortOf(peer) == remote_port_) {
        found = int(fd);
        break;
      }
    }
    ::closedir(d);
    return found;
  }

  int local_port_, remote_port_;
  int fd_ = -2;  // -2: not looked up yet; -1: not found
};

std::string SseData(const json& j) { return absl::StrCat("data: ", Dump(j), "\n\n"); }

}  // namespace

absl::Status ServerOptions::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port ", port, " is out of range 0..65535"));
  }
  if (host.empty()) return absl::InvalidArgumentError("--host must not be empty");
  if (max_body_bytes < 1024) {
    return absl::InvalidArgumentError("--max-body must be at least 1K");
  }
  if (http_threads < 4 || http_threads > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-threads ", http_threads, " is out of range 4..1024"));
  }
  return absl::OkStatus();
}

class HttpServer::Impl {
 public:
  Impl(ServerOptions o, ApiContext api, RequestQueue* queue, Metrics* metrics)
      : opt_(std::move(o)), api_(std::move(api)), queue_(queue), metrics_(metrics),
        created_(std::time(nullptr)) {
    Routes();
  }

  httplib::Server svr_;
  const ServerOptions opt_;
  std::atomic<bool> stopping_{false};

 private:
  void SendError(httplib::Response& res, const ApiError& e) {
    metrics_->OnHttpError(e.status);
    res.status = e.status;
    res.set_content(Dump(ErrorJson(e)), "application/json");
  }

  void Routes() {
    const size_t threads = size_t(opt_.http_threads);
    svr_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr_.set_payload_max_length(size_t(opt_.max_body_bytes));
    svr_.set_keep_alive_max_count(1000);
    svr_.set_tcp_nodelay(true);  // stream chunks leave as they are written
    // httplib's default adds SO_REUSEPORT, which would let a second server
    // share the port instead of failing to bind: address reuse only.
    svr_.set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    svr_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (opt_.api_key.empty() || !absl::StartsWith(req.path, "/v1/")) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      if (req.get_header_value("Authorization") == absl::StrCat("Bearer ", opt_.api_key)) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      SendError(res, ErrorForStatus(401));
      return httplib::Server::HandlerResponse::Handled;
    });
    // Replies httplib makes itself (404, 413, ...) get an OpenAI error body.
    svr_.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request&, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          SendError(res, ErrorForStatus(res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    svr_.set_exception_handler(
        [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          ApiError e = ErrorForStatus(500);
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& x) {
            e.message = absl::StrCat("internal error: ", x.what());
          } catch (...) {
          }
          SendError(res, e);
        });

    svr_.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kIndexHtml, "text/html; charset=utf-8");
    });
    svr_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (stopping_.load()) {
        res.status = 503;
        res.set_content(R"({"status":"stopping"})", "application/json");
        return;
      }
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_->Prometheus(), "text/plain; version=0.0.4; charset=utf-8");
    });
    svr_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(Dump(ModelsJson(api_.model_id, created_)), "application/json");
    });
    svr_.Get("/events", [this](const httplib::Request&, httplib::Response& res) { Events(res); });
    svr_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      Generate(ApiKind::kChat, req, res);
    });
    svr_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      Generate(ApiKind::kCompletion, req, res);
    });
  }

  void Generate(ApiKind kind, const httplib::Request& req, httplib::Response& res) {
    ApiRequest ar;
    ApiError err;
    const bool ok = kind == ApiKind::kChat ? ParseChatRequest(api_, req.body, &ar, &err)
                                           : ParseCompletionRequest(api_, req.body, &ar, &err);
    if (!ok) return SendError(res, err);
    auto r = std::make_shared<Request>(std::move(ar.gen));
    if (absl::Status s = queue_->Push(r); !s.ok()) {
      ApiError e = ErrorForStatus(503);
      e.message = std::string(s.message());
      return SendError(res, e);
    }
    const std::string id =
        absl::StrCat(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-", r->id());
    const int64_t created = std::time(nullptr);
    if (ar.stream) return Stream(kind, req, res, r, id, created, ar.include_usage);

    ConnectionWatch watch(req);
    std::string text;
    RequestEvents ev;
    while (true) {
      ev = r->WaitEvents(kWaitSlice);
      text += ev.text;
      if (ev.finished) break;
      if (watch.PeerClosed()) r->Cancel();
    }
    if (ev.finish_reason == FinishReason::kCancelled) return;  // nobody is listening
    if (ev.finish_reason == FinishReason::kError) return SendError(res, GenerationError(ev.error));
    res.set_content(Dump(CompletionJson(kind, id, created, api_.model_id, text,
                                        FinishReasonName(ev.finish_reason),
                                        {ev.prompt_tokens, ev.completion_tokens})),
                    "application/json");
  }

  static ApiError GenerationError(const absl::Status& s) {
    ApiError e = ErrorForStatus(s.code() == absl::StatusCode::kUnavailable ? 503 : 500);
    e.message = std::string(s.message());
    return e;
  }

  struct StreamState {
    std::shared_ptr<Request> request;
    ConnectionWatch watch;
    bool first = true;
  };

  void Stream(ApiKind kind, const httplib::Request& req, httplib::Response& res,
              std::shared_ptr<Request> r, std::string id, int64_t created, bool include_usage) {
    auto st = std::make_shared<StreamState>(StreamState{r, ConnectionWatch(req)});
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through unbuffered
    const std::string model = api_.model_id;
    res.set_chunked_content_provider(
        "text/event-stream",
        [st, kind, id, created, include_usage, model](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& s) {
            if (sink.write(s.data(), s.size())) return true;
            st->request->Cancel();
            return false;
          };
          if (st->first && kind == ApiKind::kChat) {
            // The role comes first, before any token, as OpenAI sends it.
            if (!send(SseData(ChunkJson(kind, id, created, model, "", true, nullptr)))) return false;
          }
          const bool first = st->first && kind != ApiKind::kChat;
          st->first = false;
          RequestEvents ev = st->request->WaitEvents(kWaitSlice);
          if (!ev.text.empty() &&
              !send(SseData(ChunkJson(kind, id, created, model, ev.text, first, nullptr)))) {
            return false;
          }
          if (ev.finished) {
            if (ev.finish_reason == FinishReason::kCancelled) return false;
            if (ev.finish_reason == FinishReason::kError) {
              if (!send(SseData(ErrorJson(GenerationError(ev.error))))) return false;
            } else {
              if (!send(SseData(ChunkJson(kind, id, created, model, "", false,
                                          FinishReasonName(ev.finish_reason))))) {
                return false;
              }
              if (include_usage &&
                  !send(SseData(UsageChunkJson(kind, id, created, model,
                                               {ev.prompt_tokens, ev.completion_tokens})))) {
                return false;
              }
            }
            if (!send("data: [DONE]\n\n")) return false;
            sink.done();
            return true;
          }
          if (st->watch.PeerClosed()) {
            st->request->Cancel();
            return false;
          }
          return true;
        },
        [st](bool success) {
          if (!success) st->request->Cancel();
        });
  }

  // The page's live feed: one LiveJson event now and every kLiveInterval.
  void Events(httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto last = std::make_shared<Clock::time_point>();
    res.set_chunked_content_provider("text/event-stream", [this, last](size_t,
                                                                       httplib::DataSink& sink) {
      while (!stopping_.load() && Clock::now() - *last < kLiveInterval) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (stopping_.load()) {
        sink.done();
        return true;
      }
      *last = Clock::now();
      const std::string s = SseData(metrics_->LiveJson());
      return sink.write(s.data(), s.size());
    });
  }

  const ApiContext api_;
  RequestQueue* queue_;
  Metrics* metrics_;
  const int64_t created_;
};

HttpServer::HttpServer(ServerOptions o, ApiContext api, RequestQueue* queue, Metrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(o), std::move(api), queue, metrics)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Bind() {
  const ServerOptions& o = impl_->opt_;
  if (o.port == 0) {
    port_ = impl_->svr_.bind_to_any_port(o.host);
    if (port_ > 0) return absl::OkStatus();
  } else if (impl_->svr_.bind_to_port(o.host, o.port)) {
    port_ = o.port;
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("cannot listen on ", o.host, ":", o.port,
                   " (address in use, not an address of this machine, or not permitted)"));
}

absl::Status HttpServer::Run() {
  if (!impl_->svr_.listen_after_bind() && !impl_->stopping_.load()) {
    return absl::InternalError("the HTTP listener stopped unexpectedly");
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  impl_->stopping_.store(true);
  impl_->svr_.stop();
}

}  // namespace moestream::server
