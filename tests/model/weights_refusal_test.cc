// The weight loader refuses a model whose tensors include a type the
// backend cannot compute with (Backend::CanCompute), naming the tensor, the
// type and the backend, whether the routed experts are uploaded or stay
// offloaded; a backend covering fewer types than the CPU kernels (as a CUDA
// build could) is modelled by a CPU backend that refuses one type.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/weights.h"
#include "tests/kernels/forwarding_backend.h"
#include "tests/test_util.h"

namespace moestream::model {
namespace {

using kernels::testing::RefusingBackend;

// mixtral-tiny-a-q4_k_m: llama.cpp's Q4_K_M, whose only Q5_0 tensors are the
// 128-wide routed ffn_down_exps.
TEST(WeightsRefusalTest, ATypeTheBackendCannotComputeRefusesTheModelNamingTensorAndType) {
  const std::string path = testing::SharedPath(
      "reference/mixtral-tiny-a-q4_k_m/mixtral-tiny-a-q4_k_m.gguf");
  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto c = ReadModelConfig(*f);
  ASSERT_TRUE(c.ok()) << c.status();
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 1;
  for (bool upload : {true, false}) {
    auto cpu = kernels::CreateBackend(bo);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    RefusingBackend narrow(std::move(*cpu), "narrow", GgmlType::kQ5_0);
    WeightsOptions wo;
    wo.upload_routed_experts = upload;
    auto w = ModelWeights::Load(*f, *c, narrow, wo);
    ASSERT_FALSE(w.ok()) << "upload " << upload;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg(w.status().message());
    EXPECT_NE(msg.find("tensor 'blk.0.ffn_down_exps.weight' has type q5_0, which the narrow "
                       "backend cannot compute with (the cpu backend can)"),
              std::string::npos)
        << msg;
    // Nothing stays allocated.
    EXPECT_EQ(narrow.device_memory().used_bytes, 0u) << msg;
  }
  // The same file loads on the CPU backend itself.
  auto cpu = kernels::CreateBackend(bo);
  ASSERT_TRUE(cpu.ok());
  EXPECT_TRUE(ModelWeights::Load(*f, *c, **cpu, WeightsOptions{}).ok());
}

}  // namespace
}  // namespace moestream::model
