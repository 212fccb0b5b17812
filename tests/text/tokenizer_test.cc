// Tokenizers against independent references: llama.cpp's tokenizer test
// vectors (inputs and expected ids produced by the models' reference
// tokenizers), the stories260K greedy ids and their text, plus round-trip
// properties (any byte string through byte-level BPE, invalid UTF-8).
#include "text/tokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "text/tokenizer_pre.h"
#include "text/unicode.h"
#include "tests/test_util.h"

namespace moestream::text {
namespace {

using moestream::testing::SharedPath;

// Joins split pieces (std::string_view, which Debian's absl::StrJoin rejects).
std::string JoinPieces(const std::vector<std::string_view>& pieces, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) out.append(sep);
    out.append(pieces[i]);
  }
  return out;
}

std::string VocabPath(const std::string& name) {
  return SharedPath("data/tokenizers/ggml-vocab-" + name + ".gguf");
}

Tokenizer LoadOrDie(const std::string& path) {
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  absl::StatusOr<Tokenizer> t = Tokenizer::FromGguf(*f);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

struct Vector {
  std::string input;
  std::vector<int32_t> ids;
};

// The .inp/.out format of llama.cpp's models/ folder: each input is followed
// by "\n__ggml_vocab_test__\n"; the .out file has one line of ids per input.
std::vector<Vector> ReadVectors(const std::string& name) {
  const std::string inp = moestream::testing::ReadFileOrDie(VocabPath(name) + ".inp");
  const std::string out = moestream::testing::ReadFileOrDie(VocabPath(name) + ".out");
  std::vector<std::string> inputs = absl::StrSplit(inp, "\n__ggml_vocab_test__\n");
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  EXPECT_FALSE(inputs.empty());
  EXPECT_TRUE(inputs.back().empty()) << "input file does not end with a separator";
  inputs.pop_back();
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  EXPECT_EQ(inputs.size(), lines.size()) << name;
  std::vector<Vector> vectors;
  for (size_t i = 0; i < inputs.size() && i < lines.size(); ++i) {
    Vector v{inputs[i], {}};
    for (absl::string_view s : absl::StrSplit(lines[i], ' ', absl::SkipEmpty())) {
      int32_t id = 0;
      EXPECT_TRUE(absl::SimpleAtoi(s, &id)) << name << " line " << i + 1;
      v.ids.push_back(id);
    }
    vectors.push_back(std::move(v));
  }
  return vectors;
}

class VectorFileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VectorFileTest, EveryInputGivesTheExpectedIdsAndDecodesBack) {
  const std::string name = GetParam();
  Tokenizer tok = LoadOrDie(VocabPath(name));
  const std::vector<Vector> vectors = ReadVectors(name);
  ASSERT_GT(vectors.size(), 40u);
  size_t passed = 0;
  for (const Vector& v : vectors) {
    const std::vector<int32_t> ids = tok.Encode(v.input, /*add_special=*/false,
                                                /*parse_special=*/false);
    if (ids == v.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << name << ": input '" << v.input << "'\n  expected "
                    << absl::StrJoin(v.ids, " ") << "\n  got      " << absl::StrJoin(ids, " ");
    }
    // Every vocabulary here can represent every input (byte fallback or
    // byte-level), so decoding gives the input back exactly.
    EXPECT_EQ(tok.Decode(v.ids), v.input) << name << ": decoding the expected ids";
  }
  EXPECT_EQ(passed, vectors.size()) << name;
  std::printf("[ vectors  ] %s: %zu/%zu inputs exact\n", name.c_str(), passed, vectors.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, VectorFileTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm",
                                           "deepseek-coder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(TokenizerTest, Stories260kDecodesTheGreedyIds) {
  Tokenizer tok = LoadOrDie(SharedPath("data/stories260k-gguf/stories260K.gguf"));
  // From the model's SOURCE.md: greedy ids from BOS and their text.
  const std::vector<int32_t> ids = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                    315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
                                    408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
                                    328, 432, 358, 394, 261, 370, 432, 352};
  const std::string text =
      " Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, r";
  EXPECT_EQ(tok.Decode(ids), text);
  Detokenizer stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.is_eog(2));
  EXPECT_FALSE(tok.is_eog(403));
  EXPECT_EQ(tok.pad(), kNoToken);  // stored as 0xFFFFFFFF: none
  // Encoding the prompt starts with BOS and the space-prefixed words.
  const std::vector<int32_t> prompt = tok.Encode("Once upon a time", true, false);
  ASSERT_GE(prompt.size(), 2u);
  EXPECT_EQ(prompt[0], 1);
  EXPECT_EQ(tok.Decode(prompt), " Once upon a time");
}

TEST(TokenizerTest, RandomBytesRoundTripThroughByteLevelBpe) {
  for (const char* name : {"gpt-2", "deepseek-llm", "deepseek-coder"}) {
    Tokenizer tok = LoadOrDie(VocabPath(name));
    // The bytes the vocabulary represents as ordinary byte-level tokens.
    // The DeepSeek vocabularies have none for the bytes that never occur in UTF-8 (0xC0,
    // 0xC1, 0xF5..0xFF): their characters are user-defined tokens that stand
    // for the character itself, so those bytes cannot round-trip there.
    std::vector<char> bytes;
    for (int b = 0; b < 256; ++b) {
      if (tok.token_type(tok.FindToken(ByteToUnicode(static_cast<uint8_t>(b)))) ==
          TokenType::kNormal) {
        bytes.push_back(static_cast<char>(b));
      }
    }
    EXPECT_EQ(bytes.size(), std::string(name) == "gpt-2" ? 256u : 243u) << name;
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 300; ++trial) {
      std::string s(rng() % 48, '\0');
      for (char& c : s) {
        // Mix in ASCII so the pre-tokenizer patterns see words and spaces.
        const uint32_t r = rng();
        c = r % 3 == 0 ? "ab \n1,"[r % 6] : bytes[(r >> 8) % bytes.size()];
      }
      const std::vector<int32_t> ids = tok.Encode(s, false, false);
      ASSERT_EQ(tok.Decode(ids), s) << name << " trial " << trial;
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.n_tokens());
    }
  }
}

TEST(TokenizerTest, InvalidUtf8IsTokenizedBytewiseWithoutCrashing) {
  Tokenizer spm = LoadOrDie(VocabPath("llama-spm"));
  const std::string bad = std::string("a\xC3") + "\xFF\x80 b\xE2\x82" + "\xF0\x9F\x98";
  const std::vector<int32_t> ids = spm.Encode(bad, false, false);
  EXPECT_EQ(spm.Decode(ids), bad);
  EXPECT_FALSE(spm.Encode(bad, true, true).empty());
  Tokenizer bpe = LoadOrDie(VocabPath("gpt-2"));
  EXPECT_EQ(bpe.Decode(bpe.Encode(bad, false, true)), bad);
}

TEST(TokenizerTest, SpecialTokensParsedOnlyWhenAsked) {
  Tokenizer tok = LoadOrDie(VocabPath("llama-spm"));
  // "▁Hello" = 15043 and "▁world" = 3186 in the Llama 2 vocabulary (see the
  // "Hello world" vector).
  EXPECT_EQ(tok.Encode("<s>Hello world</s>", false, true),
            (std::vector<int32_t>{1, 15043, 3186, 2}));
  const std::vector<int32_t> literal = tok.Encode("<s>Hello", false, false);
  EXPECT_NE(literal.front(), 1);
  EXPECT_EQ(tok.Decode(literal), "<s>Hello");
  // add_special adds BOS (add_bos_token is true) and no EOS.
  EXPECT_EQ(tok.Encode("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok.TokenToPiece(1), "");
  EXPECT_EQ(tok.TokenToPiece(1, /*render_special=*/true), "<s>");
  EXPECT_EQ(tok.TokenToPiece(15043), " Hello");
  EXPECT_EQ(tok.TokenToPiece(13), "\n");  // <0x0A>

  Tokenizer ds = LoadOrDie(VocabPath("deepseek-llm"));
  EXPECT_EQ(ds.Encode("", true, false), (std::vector<int32_t>{100000}));
  Tokenizer gpt2 = LoadOrDie(VocabPath("gpt-2"));
  EXPECT_EQ(gpt2.Encode("Hello world", true, false), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(gpt2.Encode("<|endoftext|>", false, true), (std::vector<int32_t>{50256}));
  EXPECT_TRUE(gpt2.is_eog(50256));
}

TEST(TokenizerTest, DetokenizerHoldsPartialUtf8) {
  Tokenizer tok = LoadOrDie(VocabPath("llama-spm"));
  // U+1F999 has no token: byte fallback gives four <0xXX> tokens after "▁".
  const std::vector<int32_t> ids = tok.Encode("\xF0\x9F\xA6\x99", false, false);
  ASSERT_EQ(ids.size(), 5u);
  Detokenizer d(tok, {.render_special = false, .strip_leading_space = true});
  EXPECT_EQ(d.Push(ids[0]), "");
  EXPECT_EQ(d.Push(ids[1]), "");
  EXPECT_EQ(d.Push(ids[2]), "");
  EXPECT_EQ(d.Push(ids[3]), "");
  EXPECT_EQ(d.Push(ids[4]), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(d.Flush(), "");
  // An orphan lead byte is released by Flush().
  Detokenizer e(tok);
  EXPECT_EQ(e.Push(ids[1]), "");
  EXPECT_EQ(e.Flush(), "\xF0");
}

TEST(TokenizerTest, ErrorsNameTheProblem) {
  TokenizerVocab none;
  none.model = "none";
  none.tokens = {"a"};
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(none);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--prompt-ids"), absl::string_view::npos) << t.status();

  TokenizerVocab bpe;
  bpe.model = "gpt2";
  bpe.pre = "no-such-pre";
  bpe.tokens = {"a", "b", "ab"};
  bpe.merges = {"a b"};
  t = Tokenizer::Create(bpe);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("'no-such-pre'"), absl::string_view::npos) << t.status();

  TokenizerVocab other;
  other.model = "t5";
  other.tokens = {"a"};
  t = Tokenizer::Create(other);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("'t5'"), absl::string_view::npos) << t.status();
}

// A tiny byte-level vocabulary: the pre-tokenizer splits, merges go by rank.
TEST(TokenizerTest, MergesApplyInRankOrder) {
  TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteToUnicode(static_cast<uint8_t>(b)));
  v.tokens.push_back("bc");       // 256
  v.tokens.push_back("ab");       // 257
  v.tokens.push_back("abc");      // 258
  v.tokens.push_back("\xC4\xA0" "a");  // 259: "Ġa"
  v.merges = {"b c", "a b", "a bc", "\xC4\xA0 a"};
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(v);
  ASSERT_TRUE(t.ok()) << t.status();
  // "b c" outranks "a b": a|bc -> abc.
  EXPECT_EQ(t->Encode("abc", false, false), (std::vector<int32_t>{258}));
  // " abab": the space joins the word; "a b" (rank 1) merges first, which
  // leaves "Ġ a" (rank 3) nothing to merge: Ġ (byte 0x20 = id 32), ab, ab.
  EXPECT_EQ(t->Encode(" abab", false, false), (std::vector<int32_t>{32, 257, 257}));
}

TEST(PreTokenizerTest, KnownFamiliesCompileAndSplit) {
  for (const std::string& name : KnownPreTokenizers()) {
    absl::StatusOr<PreTokenizerSpec> spec = LookupPreTokenizer(name);
    ASSERT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<RegexSplitter> s = RegexSplitter::Create(spec->patterns);
    ASSERT_TRUE(s.ok()) << name << ": " << s.status();
    const std::string text = "Hello world's 12345 \xC3\xA4\xC3\xB6 \xE4\xBD\xA0\xE5\xA5\xBD!!\n\n  x";
    EXPECT_EQ(JoinPieces(s->Split(text), ""), text) << name;
  }
  absl::StatusOr<PreTokenizerSpec> llama3 = LookupPreTokenizer("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  absl::StatusOr<RegexSplitter> s = RegexSplitter::Create(llama3->patterns);
  ASSERT_TRUE(s.ok());
  // Digits in runs of three, contractions, whitespace before a word.
  EXPECT_EQ(JoinPieces(s->Split("I'm 12345  ok"), "|"), "I|'m| |123|45| | ok");
}

}  // namespace
}  // namespace moestream::text

namespace moestream::text {
namespace {

using moestream::testing::MoestreamBin;
using moestream::testing::RunCommand;

TEST(TokenizeCliTest, PrintsIdsAndPieces) {
  const std::string vocab = VocabPath("llama-spm");
  // Ids from the "Hello world" vector, after BOS (add_bos_token is true).
  moestream::testing::CommandResult r =
      RunCommand(MoestreamBin() + " tokenize -m " + vocab + " --ids -- 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 15043 3186\n");

  r = RunCommand(MoestreamBin() + " tokenize -m " + vocab + " 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\t<s>\n15043\t Hello\n3186\t world\n");

  // Text starting with '-' after "--", without BOS.
  Tokenizer tok = LoadOrDie(vocab);
  r = RunCommand(MoestreamBin() + " tokenize -m " + vocab + " --ids --no-bos -- -x");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(absl::StrJoin(tok.Encode("-x", false, false), " "), "\n"));

  r = RunCommand(MoestreamBin() + " tokenize -m " + vocab + " --ids --parse-special -- '<s>a'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 4), "1 1 ");
}

TEST(TokenizeCliTest, ModelWithoutTokenizerIsAClearError) {
  moestream::testing::ScratchDir dir;
  io::GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("tokenizer.ggml.model", "none");
  ASSERT_TRUE(w.Write(dir.Path("none.gguf")).ok());
  moestream::testing::CommandResult r =
      RunCommand(MoestreamBin() + " tokenize -m " + dir.Path("none.gguf") + " hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no tokenizer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--prompt-ids"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace moestream::text
