// The C ABI's opaque handles (cxlkv.h, cxlkv_gpu.h) as C++ structs: what client/cxlkv.cc and
// client/cxlkv_gpu.cc both unwrap. Internal to libcxlkv; never installed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cxlkv/client.h"
#include "cxlkv/cxlkv.h"
#include "cxlkv/route.h"

struct cxlkv_client {
  std::unique_ptr<cxlkv::Client> client;
  // The layout's strings, kept for the pointers cxlkv_layout_name / cxlkv_stream_name return.
  std::string layout_name;
  std::vector<std::string> stream_names;
};
struct cxlkv_write_lease {
  cxlkv::WriteLease lease;
};
struct cxlkv_read_lease {
  cxlkv::ReadLease lease;
};
struct cxlkv_router {
  std::unique_ptr<cxlkv::PrefixRouter> router;
};

namespace cxlkv::detail {

// Records st as this thread's last error (cxlkv_last_error) and returns its code; 0 for ok.
int c_fail(const Status& st);
// CXLKV_INVALID_ARGUMENT naming the call and the NULL argument.
int c_null_argument(const char* call, const char* argument);

}  // namespace cxlkv::detail
