// cxlkv::Status and cxlkv::Result<T>: how every layer of cxlkv reports an expected failure.
// Used by cxl/, allocator/, pool/ and the public client API; nothing in cxlkv throws across a
// unit boundary. A Status names the problem and the value ("region /x: size 4096 < header 8192").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace cxlkv {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,   // the caller passed a bad value (index past the prefix, unknown layout)
  kNotFound,          // no such region, key, lease or node
  kAlreadyExists,     // creating something that exists
  kCorrupt,           // bytes on the medium fail a check (magic, checksum, size, version)
  kMismatch,          // a valid thing that is not the expected one (layout, namespace)
  kExhausted,         // out of slabs, leases, connections
  kPermissionDenied,  // wrong token or tenant
  kBusy,              // held by someone else (region lock, leased page)
  kIoError,           // a system call failed; the message carries errno's text
  kProtocol,          // a malformed or oversized frame
  kUnavailable,       // the peer is gone or the feature is not built in
  kExpired,           // a lease ran past its TTL
};

// Returns the lower-case name of a code ("corrupt", "exhausted").
const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: region /dev/shm/x: bad magic" or "ok".
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

Status io_error(const std::string& what);  // what + ": " + strerror(errno)

// A value or the Status that says why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  Result(Code code, std::string message) : status_(code, std::move(message)) {}

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace cxlkv
