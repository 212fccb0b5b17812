// `moestream tokenize -m MODEL [--ids] [--no-bos] [--parse-special] [--] TEXT`:
// the token ids of TEXT under the model's own vocabulary.
//
//   moestream tokenize -m m.gguf "Hello world"      # one "id<TAB>piece" line per token
//   moestream tokenize -m m.gguf --ids -- "-x"      # "1 448 29916" (text after -- may start with -)
//
// BOS/EOS are added as the vocabulary asks unless --no-bos; control tokens
// written in TEXT (<|im_start|>, <s>, ...) become their ids only with
// --parse-special. Several TEXT arguments are joined with single spaces. In
// the default listing, pieces are shown decoded, with \n, \t, \r, \\ and
// bytes that are not valid UTF-8 escaped so that each token stays on one line.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "io/gguf.h"
#include "cli/command.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace moestream::cli {
namespace {

std::string EscapePiece(const std::string& piece) {
  std::string out;
  for (const text::Utf8Unit& u : text::DecodeUtf8(piece)) {
    const unsigned char c = static_cast<unsigned char>(piece[u.offset]);
    if (u.length == 1 && c >= 0x80) {
      absl::StrAppendFormat(&out, "\\x%02X", c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (u.length == 1 && (c < 0x20 || c == 0x7F)) {
      absl::StrAppendFormat(&out, "\\x%02X", c);
    } else {
      out.append(piece, u.offset, u.length);
    }
  }
  return out;
}

class TokenizeCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app.add_option("-m,--model", model_, "GGUF file whose vocabulary to use");
    app.add_flag("--ids", ids_only_, "print only the ids, on one line separated by spaces");
    app.add_flag("--no-bos", no_bos_, "do not add BOS/EOS even where the vocabulary asks for them");
    app.add_flag("--parse-special", parse_special_,
                 "turn control-token text (e.g. <|im_start|>) into its id");
    app.add_option("text", text_, "text to tokenize (after -- it may start with -)")
        ->default_str("");
  }

  absl::Status Run() override {
    if (model_.empty()) return absl::InvalidArgumentError("--model (-m) is required");
    if (text_.empty()) return absl::InvalidArgumentError("expected TEXT to tokenize");
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile file, io::GgufFile::Open(model_));
    MOESTREAM_ASSIGN_OR_RETURN(text::Tokenizer tok, text::Tokenizer::FromGguf(file));
    const std::vector<int32_t> ids =
        tok.Encode(absl::StrJoin(text_, " "), /*add_special=*/!no_bos_, parse_special_);
    std::string out;
    if (ids_only_) {
      out = absl::StrCat(absl::StrJoin(ids, " "), "\n");
    } else {
      for (int32_t id : ids) {
        absl::StrAppend(&out, id, "\t",
                        EscapePiece(tok.TokenToPiece(id, /*render_special=*/true)), "\n");
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return absl::OkStatus();
  }

 private:
  std::string model_;
  bool ids_only_ = false;
  bool no_bos_ = false;
  bool parse_special_ = false;
  std::vector<std::string> text_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(tokenize, "token ids of a text under a model's vocabulary",
                           TokenizeCommand);

}  // namespace moestream::cli
