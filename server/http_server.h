// The HTTP front of `moestream serve` on cpp-httplib: the OpenAI-compatible
// endpoints, /health, /metrics, the page at / and its live feed /events.
//
//   HttpServer http(opts, api_ctx, &queue, &metrics);
//   MOESTREAM_RETURN_IF_ERROR(http.Bind());        // port 0 picks a free port
//   std::printf("listening on %d\n", http.port());
//   http.Run();                                    // until Stop() from another thread
//
// Routes:
//   POST /v1/chat/completions, /v1/completions   (api.h; SSE with "stream": true)
//   GET  /v1/models, /health, /metrics (Prometheus text), / (the page),
//        /events (SSE: Metrics::LiveJson every 250 ms)
// With an API key every /v1/ route needs "Authorization: Bearer KEY" (401
// otherwise); the page, /health, /metrics and /events stay open (the page
// asks for the key and sends it). A body over max_body_bytes is 413 before
// it is read. Every error is an OpenAI error object; a handler never takes
// the server down (an exception becomes a 500 reply).
//
// Requests go to the RequestQueue; the handler thread then waits for the
// request's output. A client that goes away cancels its request: the
// handler watches the connection's socket for the peer's hang-up (and a
// failed write ends a stream), so a disconnect frees the slot at the
// scheduler's next step.
#ifndef MOESTREAM_SERVER_HTTP_SERVER_H_
#define MOESTREAM_SERVER_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/api.h"
#include "server/metrics.h"
#include "server/request_queue.h"

namespace moestream::server {

struct ServerOptions {
  // Address and port to listen on; port 0 = any free port. Default 127.0.0.1:8080.
  std::string host = "127.0.0.1";
  int port = 8080;
  // When non-empty, /v1/ routes need "Authorization: Bearer <api_key>".
  std::string api_key;
  // Largest request body, bytes; larger is 413. Default 1 MiB.
  uint64_t max_body_bytes = uint64_t(1) << 20;
  // HTTP worker threads: each open connection (a stream, the page's live
  // feed, a waiting request) holds one. Default 32.
  int http_threads = 32;
  absl::Status Validate() const;
};

class HttpServer {
 public:
  HttpServer(ServerOptions o, ApiContext api, RequestQueue* queue, Metrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; kUnavailable naming host:port on failure.
  absl::Status Bind();
  int port() const { return port_; }
  // Serves until Stop(). kInternal if the listener fails.
  absl::Status Run();
  // Thread-safe; Run() returns soon after.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// The page at / (HTML, CSS and JavaScript in one document).
extern const char* const kIndexHtml;

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_HTTP_SERVER_H_
