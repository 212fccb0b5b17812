// libFuzzer entry point for the parsers of sizes and specs given on the
// command line: byte sizes (base/bytes.h), eviction-policy and predictor
// specs (policies/), replay capacities "N" / "N%" (trace/replay.h) and link
// profile names (kernels/backend.h). Input byte 0 picks the parser (and the
// experts per layer for capacities); the rest is the text. A spec that
// parses builds its policy or predictor, which then sees a short access
// sequence. Errors are Statuses; nothing may crash, leak or trip a
// sanitizer, and an accepted capacity lies in [1, experts].
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "kernels/backend.h"
#include "policies/eviction_policy.h"
#include "policies/policy_spec.h"
#include "policies/prefetch_predictor.h"
#include "trace/replay.h"

namespace {

namespace po = moestream::policies;
using moestream::ExpertKey;

constexpr int kLayers = 3, kExperts = 8, kTopK = 2;

struct Env {
  std::vector<ExpertKey> future;
  std::vector<double> popularity;
  po::PolicyEnv env;
  Env() {
    for (int t = 0; t < 24; ++t) future.push_back({uint16_t(t % kLayers), uint16_t((t * 5) % kExperts)});
    for (int i = 0; i < kLayers * kExperts; ++i) popularity.push_back(double((i * 7) % 11));
    env = {kLayers, kExperts, kTopK, 6, &future, &popularity};
  }
};

void DrivePolicy(po::EvictionPolicy& p, const Env& e) {
  std::vector<ExpertKey> resident;
  for (uint64_t tick = 0; tick < e.future.size(); ++tick) {
    const ExpertKey k = e.future[tick];
    po::AccessContext ctx{tick, false, k.layer};
    bool hit = false;
    for (ExpertKey r : resident) hit = hit || r == k;
    if (hit) {
      p.OnAccess(k, ctx);
      continue;
    }
    if (resident.size() == size_t(e.env.capacity)) {
      po::VictimQuery q;
      q.evictable = [](ExpertKey) { return true; };
      q.tick = tick;
      q.current_layer = k.layer;
      std::optional<ExpertKey> v = p.PickVictim(q);
      if (!v) return;
      bool known = false;
      for (size_t i = 0; i < resident.size(); ++i) {
        if (resident[i] == *v) {
          resident.erase(resident.begin() + long(i));
          known = true;
          break;
        }
      }
      if (!known) __builtin_trap();  // a victim that is not resident
      p.OnErase(*v);
    }
    resident.push_back(k);
    p.OnInsert(k, ctx);
  }
}

void DrivePredictor(po::PrefetchPredictor& p) {
  std::vector<po::ExpertGuess> guesses;
  const float scores[kExperts] = {0.1f, 0.4f, 0.05f, 0.2f, 0.05f, 0.1f, 0.05f, 0.05f};
  for (uint64_t token = 0; token < 4; ++token) {
    for (int layer = 0; layer < kLayers; ++layer) {
      const int32_t ids[kTopK] = {int32_t((token + layer) % kExperts), int32_t((token * 3 + 1) % kExperts)};
      const float w[kTopK] = {0.7f, 0.3f};
      p.Observe({token, layer, ids, w});
      po::PredictContext ctx;
      ctx.token = token;
      ctx.layer = layer;
      ctx.lookahead = 2;
      ctx.top_k = kTopK;
      ctx.experts = ids;
      ctx.next_gate_scores = scores;
      ctx.tick = token * kLayers + uint64_t(layer);
      guesses.clear();
      p.Predict(ctx, &guesses);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const Env* env = new Env();
  const uint8_t which = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which % 6) {
    case 0:
      if (auto v = moestream::ParseByteSize(text); v.ok()) (void)moestream::FormatBytes(*v);
      break;
    case 1:
      if (auto p = po::CreateEvictionPolicy(text, env->env); p.ok()) DrivePolicy(**p, *env);
      break;
    case 2:
      if (auto p = po::CreatePrefetchPredictor(text, env->env); p.ok()) DrivePredictor(**p);
      break;
    case 3: {
      const int experts = 1 + (which >> 3);  // 1..32
      if (auto c = moestream::trace::ParseCapacity(text, experts); c.ok()) {
        if (*c < 1 || *c > experts) __builtin_trap();
      }
      break;
    }
    case 4:
      (void)moestream::kernels::FindLinkProfile(text);
      break;
    case 5:
      if (auto s = po::ParsePolicySpec(text); s.ok()) {
        double d = 0;
        int64_t i = 0;
        bool b = false;
        std::string str;
        (void)s->Double("a", -1e9, 1e9, &d);
        (void)s->Int("k", 0, 4096, &i);
        (void)s->Bool("b", &b);
        (void)s->String("s", &str);
        (void)s->CheckAllUsed("a,k,b,s");
      }
      break;
  }
  return 0;
}
