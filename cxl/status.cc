// Names of status codes and the errno helper.
#include "cxlkv/status.h"

#include <cerrno>
#include <cstring>

namespace cxlkv {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kCorrupt: return "corrupt";
    case Code::kMismatch: return "mismatch";
    case Code::kExhausted: return "exhausted";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kBusy: return "busy";
    case Code::kIoError: return "i/o error";
    case Code::kProtocol: return "protocol error";
    case Code::kUnavailable: return "unavailable";
    case Code::kExpired: return "expired";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(code_name(code_)) + ": " + message_;
}

Status io_error(const std::string& what) {
  const int err = errno;
  return Status(Code::kIoError, what + ": " + std::strerror(err));
}

}  // namespace cxlkv
