// Result<T>: a value or an error message, for the fabric model and the simulator.
// Owns nothing else. Every loader and evaluator in emulation/ returns one instead of throwing;
// the CLI (emulation/sim/main.cc) turns an error into a message and a non-zero exit.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace cxlkv::emu {

template <class T>
class Result {
 public:
  // Success.
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  // Failure with a message that names the bad value.
  static Result fail(std::string message) {
    Result r;
    r.error_ = std::move(message);
    return r;
  }

  // Returns true when a value is held.
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  // Returns the value; only valid when ok().
  const T& value() const { return *value_; }
  T& value() { return *value_; }
  const T* operator->() const { return &*value_; }
  const T& operator*() const { return *value_; }
  // Returns the error message; empty when ok().
  const std::string& error() const { return error_; }

 private:
  Result() = default;
  std::optional<T> value_;
  std::string error_;
};

}  // namespace cxlkv::emu
