#include "text/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moestream::text {
namespace {

// Unicode White_Space, as a character-class body.
constexpr std::string_view kWhiteSpaceClass =
    R"(\x{09}-\x{0D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S of a pattern into explicit White_Space classes.
absl::StatusOr<std::string> RewriteWhitespace(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      ++i;
      if (n == 's') {
        if (in_class) {
          out.append(kWhiteSpaceClass);
        } else {
          absl::StrAppend(&out, "[", std::string(kWhiteSpaceClass), "]");
        }
      } else if (n == 'S') {
        if (in_class) {
          return absl::InvalidArgumentError(absl::StrCat(
              "pre-tokenizer pattern '", std::string(pattern), "': \\S inside a class is not supported"));
        }
        absl::StrAppend(&out, "[^", std::string(kWhiteSpaceClass), "]");
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int, 512> to_byte;  // mapped codepoints are all < 0x144
};

const ByteMap& GetByteMap() {
  static const ByteMap* map = [] {
    auto* m = new ByteMap();
    m->to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      AppendUtf8(cp, &m->to_unicode[b]);
      m->to_byte[cp] = b;
    }
    return m;
  }();
  return *map;
}

}  // namespace

size_t Utf8LengthFromLeadByte(uint8_t byte) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[byte >> 4];
}

std::vector<Utf8Unit> DecodeUtf8(std::string_view text) {
  std::vector<Utf8Unit> units;
  units.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = s[i];
    uint32_t cp = kReplacementCodepoint;
    uint32_t len = 1;
    auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (b0 < 0x80) {
      cp = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF && cont(1)) {
      cp = ((b0 & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF && cont(1) && cont(2)) {
      const uint32_t v = ((b0 & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
      if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {
        cp = v;
        len = 3;
      }
    } else if (b0 >= 0xF0 && b0 <= 0xF4 && cont(1) && cont(2) && cont(3)) {
      const uint32_t v = ((b0 & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) |
                         ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
      if (v >= 0x10000 && v <= 0x10FFFF) {
        cp = v;
        len = 4;
      }
    }
    units.push_back(Utf8Unit{cp, static_cast<uint32_t>(i), len});
    i += len;
  }
  return units;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view text) {
  for (const Utf8Unit& u : DecodeUtf8(text)) {
    if (u.length == 1 && static_cast<uint8_t>(text[u.offset]) >= 0x80) return false;
  }
  return true;
}

size_t IncompleteUtf8Suffix(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  // Look back over at most 3 continuation bytes for a lead byte.
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const uint8_t b = s[n - back];
    if ((b & 0xC0) == 0x80) continue;  // continuation: keep looking
    size_t need = 0;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) need = 3;
    else if (b >= 0xF0 && b <= 0xF4) need = 4;
    if (need == 0 || back >= need) return 0;  // ASCII, invalid, or complete
    // Still incomplete: hold it only if what is there can still become valid.
    if (back >= 2) {
      const uint8_t b1 = s[n - back + 1];
      if ((b == 0xE0 && b1 < 0xA0) || (b == 0xED && b1 > 0x9F) || (b == 0xF0 && b1 < 0x90) ||
          (b == 0xF4 && b1 > 0x8F)) {
        return 0;
      }
    }
    return back;
  }
  return 0;
}

std::string_view ByteToUnicode(uint8_t byte) { return GetByteMap().to_unicode[byte]; }

int UnicodeToByte(uint32_t codepoint) {
  return codepoint < 512 ? GetByteMap().to_byte[codepoint] : -1;
}

std::string ByteLevelEncode(std::string_view bytes) {
  const ByteMap& m = GetByteMap();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(m.to_unicode[static_cast<uint8_t>(c)]);
  return out;
}

std::string ByteLevelDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const Utf8Unit& u : DecodeUtf8(text)) {
    const bool invalid = u.length == 1 && static_cast<uint8_t>(text[u.offset]) >= 0x80;
    const int b = invalid ? -1 : UnicodeToByte(u.codepoint);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(u.offset, u.length));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// RegexSplitter

struct RegexSplitter::Compiled {
  std::string source;
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

absl::StatusOr<RegexSplitter> RegexSplitter::Create(const std::vector<std::string>& patterns) {
  RegexSplitter splitter;
  for (const std::string& pattern : patterns) {
    absl::StatusOr<std::string> rewritten = RewriteWhitespace(pattern);
    if (!rewritten.ok()) return rewritten.status();
    auto compiled = std::make_shared<Compiled>();
    compiled->source = pattern;
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten->data()),
                                   rewritten->size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error,
                                   &error_offset, nullptr);
    if (compiled->code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(
          absl::StrCat("pre-tokenizer pattern '", pattern, "': PCRE2 error at offset ",
                       error_offset, ": ", reinterpret_cast<const char*>(message)));
    }
    // JIT is an optimisation only: a pattern it rejects still runs interpreted.
    pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
    splitter.patterns_.push_back(std::move(compiled));
  }
  return splitter;
}

std::vector<std::string_view> RegexSplitter::Split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;

  // Match on a valid-UTF-8 copy in which each invalid byte reads as U+FFFD,
  // then map every boundary back to the original bytes.
  const std::vector<Utf8Unit> units = DecodeUtf8(text);
  const size_t n_units = units.size();
  std::string clean;
  clean.reserve(text.size() + 8);
  std::vector<uint32_t> clean_offset(n_units + 1);
  for (size_t i = 0; i < n_units; ++i) {
    clean_offset[i] = static_cast<uint32_t>(clean.size());
    const Utf8Unit& u = units[i];
    const bool invalid = u.length == 1 && static_cast<uint8_t>(text[u.offset]) >= 0x80;
    if (invalid) {
      AppendUtf8(kReplacementCodepoint, &clean);
    } else {
      clean.append(text.substr(u.offset, u.length));
    }
  }
  clean_offset[n_units] = static_cast<uint32_t>(clean.size());
  std::vector<int32_t> unit_at(clean.size() + 1, -1);
  for (size_t i = 0; i <= n_units; ++i) unit_at[clean_offset[i]] = static_cast<int32_t>(i);

  std::vector<std::pair<uint32_t, uint32_t>> segments = {{0, static_cast<uint32_t>(n_units)}};
  std::vector<std::pair<uint32_t, uint32_t>> next;
  const auto* subject_all = reinterpret_cast<PCRE2_SPTR>(clean.data());
  for (const auto& pattern : patterns_) {
    next.clear();
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(pattern->code, nullptr);
    for (const auto& [a, b] : segments) {
      const size_t base = clean_offset[a];
      const size_t len = clean_offset[b] - base;
      PCRE2_SPTR subject = subject_all + base;
      auto push = [&](size_t from, size_t to) {
        next.emplace_back(unit_at[base + from], unit_at[base + to]);
      };
      size_t pos = 0;
      size_t last = 0;
      while (pos < len) {
        int rc = pcre2_match(pattern->code, subject, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          // e.g. the JIT stack ran out on a long run: retry interpreted.
          rc = pcre2_match(pattern->code, subject, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                           md, nullptr);
        }
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = ov[0];
        const size_t me = ov[1];
        if (me <= ms) {  // empty match: step one character and search on
          pos = ms + 1;
          while (pos < len && unit_at[base + pos] < 0) ++pos;
          continue;
        }
        if (ms > last) push(last, ms);
        push(ms, me);
        last = pos = me;
      }
      if (last < len) push(last, len);
    }
    pcre2_match_data_free(md);
    segments.swap(next);
  }

  pieces.reserve(segments.size());
  for (const auto& [a, b] : segments) {
    const size_t from = units[a].offset;
    const size_t to = b == n_units ? text.size() : units[b].offset;
    pieces.push_back(text.substr(from, to - from));
  }
  return pieces;
}

}  // namespace moestream::text
