// `moestream serve`: an OpenAI-compatible HTTP server over one loaded model
// (server/: the queue, the scheduler of sequence slots, the endpoints, the
// page with the live expert-cache view).
//
//   moestream serve -m stories260K.gguf --port 8080
//   moestream serve -m model.gguf --parallel 4 --ctx 2048 --api-key secret
//   moestream serve -m moe.gguf --experts-on host --device-budget 64M --parallel 2
//
// Runs until SIGINT or SIGTERM; then waiting and running requests end with
// an error reply and the process exits 0.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/mutex.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "engine/session.h"
#include "model/memory_planner.h"
#include "server/api.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_queue.h"
#include "server/scheduler.h"
#include "server/text_codec.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace moestream::cli {
namespace {

struct ServeFlags {
  EngineFlags engine;
  server::ServerOptions http;
  int parallel = 1;
  int64_t queue_max = 64;
  std::string chat_format;
  std::string alias;

  void Register(CLI::App& app) {
    engine.Register(app);
    app.add_option("--host", http.host, "address to listen on");
    app.add_option("--port", http.port, "port to listen on; 0 = any free port (printed)");
    app.add_option("--api-key", http.api_key,
                   "require 'Authorization: Bearer KEY' on the /v1/ endpoints");
    app.add_option("--parallel", parallel,
                   "sequence slots: requests decoded at once, each with its own KV cache of --ctx "
                   "positions");
    app.add_option("--queue-max", queue_max, "requests that may wait for a slot; more get 503");
    AddByteSizeOption(app, "--max-body", &http.max_body_bytes,
                      "largest request body; larger is 413");
    app.add_option("--http-threads", http.http_threads,
                   "HTTP worker threads (each open stream or waiting request holds one)");
    app.add_option("--chat-format", chat_format,
                   "chat family instead of the one the GGUF's template shows");
    app.add_option("--alias", alias, "model id that /v1/models lists (default: the file's name)");
  }
};

// The model's file name without folders and ".gguf".
std::string ModelId(const std::string& path) {
  std::string id = path.substr(path.find_last_of('/') + 1);
  if (id.size() > 5 && id.ends_with(".gguf")) id.resize(id.size() - 5);
  return id;
}

// SIGINT and SIGTERM, taken by one thread from before the model loads (so
// no thread the backend starts inherits the default action): during loading
// they end the process; once serving they run `stop` (the scheduler, then
// the listener) and the server winds down.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is a failed write, not an exit
    thread_ = std::thread([this] {
      int sig = 0;
      sigwait(&set_, &sig);
      if (exiting_.load()) return;  // woken by the destructor
      std::fprintf(stderr, "serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::function<void()> stop;
      {
        MutexLock lock(&mu_);
        stop = stop_;
      }
      if (!stop) std::_Exit(1);  // still loading: nothing to wind down
      stop();
    });
  }
  ~StopSignals() { Finish(); }
  // Ends the signal thread, waiting for a `stop` it is running. Idempotent.
  void Finish() {
    if (!thread_.joinable()) return;
    exiting_.store(true);
    pthread_kill(thread_.native_handle(), SIGTERM);  // taken by its sigwait, if still waiting
    thread_.join();
  }
  void OnStop(std::function<void()> stop) {
    MutexLock lock(&mu_);
    stop_ = std::move(stop);
  }

 private:
  sigset_t set_;
  std::atomic<bool> exiting_{false};
  Mutex mu_;
  std::function<void()> stop_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

absl::Status Serve(const ServeFlags& flags) {
  const EngineFlags& ef = flags.engine;
  MOESTREAM_RETURN_IF_ERROR(flags.http.Validate());
  server::RequestQueueOptions qo;
  qo.max_waiting = flags.queue_max;
  MOESTREAM_RETURN_IF_ERROR(qo.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, ef.EngineOptions());
  server::SchedulerOptions so;
  so.parallel = flags.parallel;
  so.engine = eo;
  MOESTREAM_RETURN_IF_ERROR(so.Validate());
  MOESTREAM_RETURN_IF_ERROR(ef.BackendOptions().status());

  // Everything the GGUF's header decides, before any weight loads.
  MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile header, io::GgufFile::Open(ef.model));
  MOESTREAM_ASSIGN_OR_RETURN(model::ModelConfig config, model::ReadModelConfig(header));
  std::optional<text::Tokenizer> tokenizer;
  if (absl::StatusOr<text::Tokenizer> t = text::Tokenizer::FromGguf(header); t.ok()) {
    tokenizer.emplace(*std::move(t));
  } else if (header.Find("tokenizer.ggml.tokens") != nullptr) {
    return absl::Status(t.status().code(),
                        absl::StrCat("the model's vocabulary cannot be used: ", t.status().message()));
  } else {
    std::fprintf(stderr,
                 "serve: no vocabulary in %s: prompts and replies are byte ids (README, "
                 "`moestream serve`)\n",
                 ef.model.c_str());
  }
  std::optional<text::ChatFormat> chat;
  if (!flags.chat_format.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(chat, text::ParseChatFormat(flags.chat_format));
  } else if (const io::GgufValue* t = header.Find("tokenizer.chat_template");
             t != nullptr && t->is_string()) {
    if (absl::StatusOr<text::ChatFormat> f = text::DetectChatFormat(t->raw_string()); f.ok()) {
      chat = *f;
    }
  }

  // The listener is bound before the model loads: a port in use fails at once.
  const server::TextCodec codec(tokenizer.has_value() ? &*tokenizer : nullptr, chat,
                                config.n_vocab);
  server::RequestQueue queue(qo);
  server::Metrics metrics;
  server::ApiContext api;
  api.codec = &codec;
  api.n_ctx = eo.ResolvedCtx(config);
  api.model_id = flags.alias.empty() ? ModelId(ef.model) : flags.alias;
  server::HttpServer http(flags.http, api, &queue, &metrics);
  MOESTREAM_RETURN_IF_ERROR(http.Bind());

  StopSignals signals;
  engine::CachedExpertProvider* offload = nullptr;
  MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<engine::LoadedModel> m,
                             LoadModelForSequences(ef, config, flags.parallel, "--parallel", true, &offload));
  if (tokenizer.has_value()) {
    // The vocabulary knows end-of-generation tokens the metadata may not name.
    for (int32_t id : tokenizer->eog_ids()) {
      if (!m->config.IsEog(id)) m->config.eog_ids.push_back(id);
    }
  }
  MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<server::Scheduler> scheduler,
                             server::Scheduler::Create(m.get(), offload, &codec, &queue, &metrics, so));
  if (scheduler->n_ctx() != api.n_ctx) {
    return absl::InternalError(absl::StrCat("context ", scheduler->n_ctx(), " differs from the ",
                                            api.n_ctx, " planned before loading"));
  }
  scheduler->Start();
  signals.OnStop([&] {
    scheduler->Stop();
    http.Stop();
  });
  std::fprintf(stderr,
               "serve: %s on http://%s:%d/ (%d slot%s of %lld positions, chat format %s%s)\n",
               api.model_id.c_str(), flags.http.host.c_str(), http.port(), flags.parallel,
               flags.parallel == 1 ? "" : "s", static_cast<long long>(api.n_ctx),
               std::string(codec.chat_format_name()).c_str(),
               flags.http.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  const absl::Status run = http.Run();
  signals.Finish();
  scheduler->Stop();
  return run;
}

class ServeCommand : public Command {
 public:
  void Register(CLI::App& app) override { flags_.Register(app); }
  absl::Status Run() override { return Serve(flags_); }

 private:
  ServeFlags flags_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(serve, "OpenAI-compatible HTTP server with a live expert-cache view",
                           ServeCommand);

}  // namespace moestream::cli
