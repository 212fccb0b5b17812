// GgufValue (the metadata value of GGUF v3) and the small naming helpers of
// io/gguf.h: type names, expert matrix names, tensor shape strings.
#include <cstring>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "io/gguf.h"

namespace moestream::io {

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "unknown";
}

std::string_view ExpertMatrixName(ExpertMatrix m) {
  switch (m) {
    case ExpertMatrix::kGate: return "gate";
    case ExpertMatrix::kUp: return "up";
    case ExpertMatrix::kDown: return "down";
  }
  return "unknown";
}

std::string GgufTensorInfo::ShapeString() const {
  std::string s = "[";
  for (uint32_t d = 0; d < n_dims; ++d) absl::StrAppend(&s, d ? ", " : "", ne[d]);
  return s + "]";
}

namespace {

bool IsUnsignedType(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}
bool IsSignedType(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

absl::Status Mismatch(GgufType have, std::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("value of type ", Av(GgufTypeName(have)), " is not ", Av(want)));
}

}  // namespace

GgufValue GgufValue::Uint(GgufType t, uint64_t v) {
  GgufValue r;
  r.type_ = t;
  r.u_ = v;
  return r;
}

GgufValue GgufValue::Int(GgufType t, int64_t v) {
  GgufValue r;
  r.type_ = t;
  r.i_ = v;
  return r;
}

GgufValue GgufValue::Float(GgufType t, double v) {
  GgufValue r;
  r.type_ = t;
  r.f_ = v;
  return r;
}

GgufValue GgufValue::Bool(bool v) {
  GgufValue r;
  r.type_ = GgufType::kBool;
  r.u_ = v ? 1 : 0;
  return r;
}

GgufValue GgufValue::String(std::string v) {
  GgufValue r;
  r.type_ = GgufType::kString;
  r.s_ = std::move(v);
  return r;
}

GgufValue GgufValue::Array(GgufType element_type, std::vector<GgufValue> items) {
  GgufValue r;
  r.type_ = GgufType::kArray;
  r.array_type_ = element_type;
  r.items_ = std::move(items);
  return r;
}

bool GgufValue::is_integer() const { return IsUnsignedType(type_) || IsSignedType(type_); }
bool GgufValue::is_float() const {
  return type_ == GgufType::kFloat32 || type_ == GgufType::kFloat64;
}

absl::StatusOr<uint64_t> GgufValue::AsUint() const {
  if (IsUnsignedType(type_)) return u_;
  if (IsSignedType(type_)) {
    if (i_ < 0) return absl::InvalidArgumentError(absl::StrCat("negative value ", i_, " is not unsigned"));
    return static_cast<uint64_t>(i_);
  }
  return Mismatch(type_, "an unsigned integer");
}

absl::StatusOr<int64_t> GgufValue::AsInt() const {
  if (IsSignedType(type_)) return i_;
  if (IsUnsignedType(type_)) {
    if (u_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat("value ", u_, " does not fit int64"));
    }
    return static_cast<int64_t>(u_);
  }
  return Mismatch(type_, "an integer");
}

absl::StatusOr<double> GgufValue::AsFloat() const {
  if (is_float()) return f_;
  if (IsUnsignedType(type_)) return static_cast<double>(u_);
  if (IsSignedType(type_)) return static_cast<double>(i_);
  return Mismatch(type_, "a number");
}

absl::StatusOr<bool> GgufValue::AsBool() const {
  if (type_ == GgufType::kBool) return u_ != 0;
  return Mismatch(type_, "a bool");
}

absl::StatusOr<std::string_view> GgufValue::AsString() const {
  if (type_ == GgufType::kString) return std::string_view(s_);
  return Mismatch(type_, "a string");
}

std::string GgufValue::DebugString(size_t max_items) const {
  if (IsUnsignedType(type_)) return absl::StrCat(u_);
  if (IsSignedType(type_)) return absl::StrCat(i_);
  switch (type_) {
    case GgufType::kBool: return u_ ? "true" : "false";
    case GgufType::kFloat32: return absl::StrFormat("%.9g", f_);
    case GgufType::kFloat64: return absl::StrFormat("%.17g", f_);
    case GgufType::kString: {
      std::string out = "\"";
      for (char c : s_) {
        if (c == '"' || c == '\\') {
          out += '\\';
          out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
      }
      return out + "\"";
    }
    case GgufType::kArray: {
      std::string out = absl::StrCat(Av(GgufTypeName(array_type_)), "[", items_.size(), "] [");
      for (size_t i = 0; i < items_.size() && i < max_items; ++i) {
        absl::StrAppend(&out, i ? ", " : "", items_[i].DebugString(max_items));
      }
      if (items_.size() > max_items) absl::StrAppend(&out, ", ...");
      return out + "]";
    }
    default: return "?";
  }
}

// Floats compare by bit pattern, so a value equals what was written even for
// NaN payloads and signed zeros.
bool operator==(const GgufValue& a, const GgufValue& b) {
  if (a.type_ != b.type_) return false;
  if (IsUnsignedType(a.type_) || a.type_ == GgufType::kBool) return a.u_ == b.u_;
  if (IsSignedType(a.type_)) return a.i_ == b.i_;
  switch (a.type_) {
    case GgufType::kFloat32:
    case GgufType::kFloat64: return std::memcmp(&a.f_, &b.f_, sizeof(double)) == 0;
    case GgufType::kString: return a.s_ == b.s_;
    case GgufType::kArray: return a.array_type_ == b.array_type_ && a.items_ == b.items_;
    default: return false;
  }
}

}  // namespace moestream::io
