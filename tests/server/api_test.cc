// The OpenAI wire format: request validation (every error names its field),
// prompts through the text codec, and the shapes of replies and chunks.
#include "server/api.h"

#include <string>

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "nlohmann/json.hpp"
#include "server/text_codec.h"
#include "tests/test_util.h"
#include "text/tokenizer.h"

namespace moestream::server {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  // No vocabulary: byte ids, 512 ids, a context of 64 positions.
  TextCodec codec_{nullptr, std::nullopt, 512};
  ApiContext ctx_{&codec_, 64, "m"};

  ApiError ChatError(const std::string& body) {
    ApiRequest r;
    ApiError e;
    EXPECT_FALSE(ParseChatRequest(ctx_, body, &r, &e)) << body;
    return e;
  }
  ApiError CompletionError(const std::string& body) {
    ApiRequest r;
    ApiError e;
    EXPECT_FALSE(ParseCompletionRequest(ctx_, body, &r, &e)) << body;
    return e;
  }
};

TEST_F(ApiTest, ChatRequestWithEveryField) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(ParseChatRequest(ctx_, R"({"model":"m","messages":[
      {"role":"system","content":"ab"},
      {"role":"user","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}],
      "max_tokens":7,"temperature":0,"top_p":0.5,"seed":42,"n":1,"stop":["x","yz"],
      "stream":true,"stream_options":{"include_usage":true},"unknown_field":[1,2]})",
                               &r, &e))
      << e.message;
  // Without a chat template the contents are joined by a blank line.
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{'a', 'b', '\n', '\n', 'c', 'd'}));
  EXPECT_EQ(r.gen.max_tokens, 7);
  EXPECT_EQ(r.gen.temperature, 0);
  EXPECT_EQ(r.gen.top_p, 0.5);
  EXPECT_EQ(r.gen.seed, 42);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST_F(ApiTest, DefaultsAreOpenAIs) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(ParseChatRequest(ctx_, R"({"messages":[{"role":"user","content":"hi"}]})", &r, &e));
  EXPECT_EQ(r.gen.max_tokens, 0);  // up to the context
  EXPECT_EQ(r.gen.temperature, 1.0);
  EXPECT_EQ(r.gen.top_p, 1.0);
  EXPECT_EQ(r.gen.seed, -1);
  EXPECT_FALSE(r.stream);
}

TEST_F(ApiTest, BadJsonAndNonObjects) {
  EXPECT_EQ(ChatError("{not json").message, "the request body is not valid JSON");
  EXPECT_EQ(ChatError("{not json").status, 400);
  EXPECT_EQ(ChatError("[1,2]").message, "the request body must be a JSON object");
  EXPECT_EQ(ChatError("").status, 400);
}

TEST_F(ApiTest, EachBadFieldIsNamed) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  struct Case {
    std::string body;
    std::string param;
  } cases[] = {
      {R"({})", "messages"},
      {R"({"messages":[]})", "messages"},
      {R"({"messages":"hi"})", "messages"},
      {R"({"messages":[1]})", "messages[0]"},
      {R"({"messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content"},
      {"{" + msgs + R"(,"model":3})", "model"},
      {"{" + msgs + R"(,"max_tokens":0})", "max_tokens"},
      {"{" + msgs + R"(,"max_tokens":1.5})", "max_tokens"},
      {"{" + msgs + R"(,"max_completion_tokens":-2})", "max_completion_tokens"},
      {"{" + msgs + R"(,"temperature":2.5})", "temperature"},
      {"{" + msgs + R"(,"temperature":"hot"})", "temperature"},
      {"{" + msgs + R"(,"top_p":0})", "top_p"},
      {"{" + msgs + R"(,"seed":-1})", "seed"},
      {"{" + msgs + R"(,"n":2})", "n"},
      {"{" + msgs + R"(,"stop":[1]})", "stop"},
      {"{" + msgs + R"(,"stop":["a","b","c","d","e"]})", "stop"},
      {"{" + msgs + R"(,"stop":""})", "stop"},
      {"{" + msgs + R"(,"stream":"yes"})", "stream"},
      {"{" + msgs + R"(,"stream_options":{"include_usage":true}})", "stream_options"},
      {"{" + msgs + R"(,"stream":true,"stream_options":{"include_usage":1}})",
       "stream_options.include_usage"},
  };
  for (const Case& c : cases) {
    const ApiError e = ChatError(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_EQ(e.type, "invalid_request_error");
    const json j = ErrorJson(e);
    EXPECT_EQ(j["error"]["param"], c.param);
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
}

TEST_F(ApiTest, PromptThatFillsTheContextIsRefused) {
  const std::string long_text(64, 'a');  // 64 byte ids: no room left in 64 positions
  ApiError e = ChatError(R"({"messages":[{"role":"user","content":")" + long_text + R"("}]})");
  EXPECT_EQ(e.param, "messages");
  EXPECT_EQ(e.code, "context_length_exceeded");
  e = CompletionError(R"({"prompt":")" + long_text + R"("})");
  EXPECT_EQ(e.param, "prompt");
  EXPECT_EQ(e.code, "context_length_exceeded");
  ApiRequest r;
  EXPECT_TRUE(ParseCompletionRequest(ctx_, R"({"prompt":")" + long_text.substr(1) + R"("})", &r, &e));
}

TEST_F(ApiTest, CompletionPromptForms) {
  ApiRequest r;
  ApiError e;
  ASSERT_TRUE(ParseCompletionRequest(ctx_, R"({"prompt":"ab"})", &r, &e));
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{'a', 'b'}));
  ASSERT_TRUE(ParseCompletionRequest(ctx_, R"({"prompt":["xy"]})", &r, &e));
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{'x', 'y'}));
  r = {};
  ASSERT_TRUE(ParseCompletionRequest(ctx_, R"({"prompt":[5, 511, 0]})", &r, &e));
  EXPECT_EQ(r.gen.prompt, (std::vector<int32_t>{5, 511, 0}));
  EXPECT_EQ(CompletionError(R"({"prompt":[5, 512]})").param, "prompt");  // outside the vocabulary
  EXPECT_EQ(CompletionError(R"({"prompt":[-1]})").param, "prompt");
  EXPECT_EQ(CompletionError(R"({"prompt":{"a":1}})").param, "prompt");
  EXPECT_EQ(CompletionError(R"({"prompt":""})").param, "prompt");  // no tokens
  EXPECT_EQ(CompletionError(R"({})").param, "prompt");
}

TEST_F(ApiTest, ReplyAndChunkShapes) {
  json j = CompletionJson(ApiKind::kChat, "chatcmpl-1", 100, "m", "hi", "stop", {3, 2});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  j = CompletionJson(ApiKind::kCompletion, "cmpl-1", 100, "m", "hi", "length", {3, 2});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "hi");

  j = ChunkJson(ApiKind::kChat, "c", 1, "m", "", true, nullptr);
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  j = ChunkJson(ApiKind::kChat, "c", 1, "m", "tok", false, nullptr);
  EXPECT_FALSE(j["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(j["choices"][0]["delta"]["content"], "tok");
  j = ChunkJson(ApiKind::kChat, "c", 1, "m", "", false, "length");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["delta"].empty());
  j = UsageChunkJson(ApiKind::kChat, "c", 1, "m", {4, 6});
  EXPECT_TRUE(j["choices"].empty());
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  j = ModelsJson("m", 5);
  EXPECT_EQ(j["data"][0]["id"], "m");
}

TEST_F(ApiTest, ErrorsForStatuses) {
  EXPECT_EQ(ErrorForStatus(401).type, "authentication_error");
  EXPECT_EQ(ErrorForStatus(401).code, "invalid_api_key");
  EXPECT_EQ(ErrorForStatus(413).status, 413);
  EXPECT_EQ(ErrorForStatus(503).type, "server_error");
}

TEST_F(ApiTest, InvalidUtf8FromAModelIsReplacedNotThrown) {
  const json j = CompletionJson(ApiKind::kChat, "c", 1, "m", std::string("a\xff" "b"), "stop", {});
  const std::string s = Dump(j);
  EXPECT_NE(s.find("a\xEF\xBF\xBD" "b"), std::string::npos) << s;
}

TEST(TextCodecTest, ByteIdsNeedAVocabularyOf256) {
  TextCodec small(nullptr, std::nullopt, 100);
  EXPECT_EQ(small.EncodeText("a").status().code(), absl::StatusCode::kFailedPrecondition);
  TextCodec codec(nullptr, std::nullopt, 512);
  std::unique_ptr<TextDecoder> d = codec.NewDecoder();
  EXPECT_EQ(d->Push(17) + d->Push(305) + d->Flush(), " 17 305");
  EXPECT_EQ(codec.chat_format_name(), "byte-ids");
}

TEST(TextCodecTest, WithTheStoriesVocabulary) {
  auto f = io::GgufFile::Open(testing::SharedPath("data/stories260k-gguf/stories260K.gguf"));
  if (!f.ok()) GTEST_SKIP() << "stories260K.gguf not available: " << f.status();
  auto t = text::Tokenizer::FromGguf(*f);
  ASSERT_TRUE(t.ok()) << t.status();
  TextCodec codec(&*t, std::nullopt, 512);
  EXPECT_EQ(codec.chat_format_name(), "plain");
  auto ids = codec.EncodeText("Once upon a time");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), t->bos());
  std::unique_ptr<TextDecoder> d = codec.NewDecoder();
  std::string text;
  for (size_t i = 1; i < ids->size(); ++i) text += d->Push((*ids)[i]);
  text += d->Flush();
  EXPECT_EQ(text, " Once upon a time");
  // A chat without a template: the contents joined by a blank line.
  std::vector<text::ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hi"}};
  auto chat_ids = codec.EncodeChat(chat);
  ASSERT_TRUE(chat_ids.ok());
  EXPECT_EQ(*chat_ids, *codec.EncodeText("Be brief.\n\nHi"));
}

}  // namespace
}  // namespace moestream::server
