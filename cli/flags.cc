#include "cli/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::cli {
using ::moestream::Av;

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(Av(text)));
  if (t.empty()) return absl::InvalidArgumentError("empty size");
  double mult = 1;
  auto strip = [&](std::string_view suffix, double m) {
    if (t.size() > suffix.size() && t.substr(t.size() - suffix.size()) == suffix) {
      t.resize(t.size() - suffix.size());
      mult = m;
      return true;
    }
    return false;
  };
  const double k = 1024.0;
  strip("IB", 1) || strip("B", 1);
  if (mult == 1) {
    strip("K", k) || strip("M", k * k) || strip("G", k * k * k) || strip("T", k * k * k * k);
  }
  double v = 0;
  if (!absl::SimpleAtod(t, &v) || !(v >= 0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat("'", Av(text), "' is not a size (e.g. 24G, 512M, 4096)"));
  }
  double bytes = v * mult;
  if (bytes > 1.8e19) return absl::InvalidArgumentError(absl::StrCat("size '", Av(text), "' is too large"));
  return static_cast<uint64_t>(std::llround(bytes));
}

void FlagParser::String(std::string name, char short_name, std::string metavar,
                        std::string help, std::string* out) {
  flags_.push_back({name, short_name, metavar.empty() ? "VALUE" : metavar, std::move(help),
                    [out](const std::string& v) {
                      *out = v;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Int(std::string name, char short_name, std::string metavar, std::string help,
                     int64_t* out) {
  std::string n = name;
  flags_.push_back({name, short_name, metavar.empty() ? "N" : metavar, std::move(help),
                    [out, n](const std::string& v) {
                      int64_t x;
                      if (!absl::SimpleAtoi(v, &x)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", n, ": '", v, "' is not an integer"));
                      }
                      *out = x;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Double(std::string name, char short_name, std::string metavar,
                        std::string help, double* out) {
  std::string n = name;
  flags_.push_back({name, short_name, metavar.empty() ? "X" : metavar, std::move(help),
                    [out, n](const std::string& v) {
                      double x;
                      if (!absl::SimpleAtod(v, &x) || !std::isfinite(x)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", n, ": '", v, "' is not a number"));
                      }
                      *out = x;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Bytes(std::string name, std::string metavar, std::string help, uint64_t* out) {
  std::string n = name;
  flags_.push_back({name, 0, metavar.empty() ? "SIZE" : metavar, std::move(help),
                    [out, n](const std::string& v) {
                      auto b = ParseByteSize(v);
                      if (!b.ok()) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", n, ": ", b.status().message()));
                      }
                      *out = *b;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Bool(std::string name, std::string help, bool* out) {
  flags_.push_back({name, 0, "", std::move(help), [out](const std::string&) {
                      *out = true;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Positionals(std::string usage, std::vector<std::string>* out) {
  positional_usage_ = std::move(usage);
  positionals_ = out;
}

const FlagParser::Flag* FlagParser::FindLong(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const FlagParser::Flag* FlagParser::FindShort(char c) const {
  for (const auto& f : flags_) {
    if (c != 0 && f.short_name == c) return &f;
  }
  return nullptr;
}

bool FlagParser::was_set(const std::string& name) const {
  for (const auto& s : set_) {
    if (s == name) return true;
  }
  return false;
}

absl::Status FlagParser::Parse(const std::vector<std::string>& args) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-' ||
        (a[1] != '-' && !std::isalpha(static_cast<unsigned char>(a[1])))) {
      if (positionals_ == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "'"));
      }
      positionals_->push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    const Flag* f = nullptr;
    std::string value;
    bool has_value = false;
    std::string shown = a;
    if (a[1] == '-') {
      std::string name = a.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
        shown = "--" + name;
      }
      f = FindLong(name);
    } else {
      if (a.size() != 2) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag '", a, "' (see --help)"));
      }
      f = FindShort(a[1]);
    }
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", shown, "' (see --help)"));
    }
    if (f->metavar.empty()) {
      if (has_value) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", f->name, " takes no value"));
      }
    } else if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", f->name, " needs a value (", f->metavar, ")"));
      }
      value = args[++i];
    }
    absl::Status s = f->set(value);
    if (!s.ok()) return s;
    set_.push_back(f->name);
  }
  return absl::OkStatus();
}

std::string FlagParser::Usage() const {
  std::string u = absl::StrCat("usage: moestream ", command_, " ", positional_usage_,
                               flags_.empty() ? "" : " [flags]", "\n");
  for (const auto& f : flags_) {
    std::string lhs = f.short_name ? absl::StrCat("  -", std::string(1, f.short_name), ", --")
                                   : std::string("      --");
    absl::StrAppend(&lhs, f.name, f.metavar.empty() ? "" : " " + f.metavar);
    if (lhs.size() < 30) lhs.resize(30, ' ');
    absl::StrAppend(&u, lhs, " ", f.help, "\n");
  }
  return u;
}

}  // namespace moestream::cli
