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
#include "io/gguf.h"
#include "cli/command.h"
#include "cli/flags.h"
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

int RunTokenize(std::vector<std::string> args) {
  constexpr char kCmd[] = "tokenize";
  FlagParser p(kCmd);
  std::string model;
  bool ids_only = false;
  bool no_bos = false;
  bool parse_special = false;
  std::vector<std::string> text;
  p.String("model", 'm', "MODEL", "GGUF file whose vocabulary to use", &model);
  p.Bool("ids", "print only the ids, on one line separated by spaces", &ids_only);
  p.Bool("no-bos", "do not add BOS/EOS even where the vocabulary asks for them", &no_bos);
  p.Bool("parse-special", "turn control-token text (e.g. <|im_start|>) into its id", &parse_special);
  p.Positionals("[--] TEXT", &text);
  if (absl::Status s = p.Parse(args); !s.ok()) return ReportError(kCmd, s);
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return 0;
  }
  if (model.empty()) {
    return ReportError(kCmd, absl::InvalidArgumentError("--model (-m) is required"));
  }
  if (text.empty()) {
    return ReportError(kCmd, absl::InvalidArgumentError("expected TEXT to tokenize"));
  }
  absl::StatusOr<io::GgufFile> file = io::GgufFile::Open(model);
  if (!file.ok()) return ReportError(kCmd, file.status());
  absl::StatusOr<text::Tokenizer> tok = text::Tokenizer::FromGguf(*file);
  if (!tok.ok()) return ReportError(kCmd, tok.status());

  const std::vector<int32_t> ids =
      tok->Encode(absl::StrJoin(text, " "), /*add_special=*/!no_bos, parse_special);
  std::string out;
  if (ids_only) {
    out = absl::StrCat(absl::StrJoin(ids, " "), "\n");
  } else {
    for (int32_t id : ids) {
      absl::StrAppend(&out, id, "\t", EscapePiece(tok->TokenToPiece(id, /*render_special=*/true)),
                      "\n");
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(tokenize, "token ids of a text under a model's vocabulary",
                           RunTokenize);

}  // namespace moestream::cli
