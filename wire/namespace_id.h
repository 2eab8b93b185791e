// The namespace id of (tenant, model) as protocol v1 defines it (docs/protocol.md). One
// definition for both ends: the daemon's Hello handler (pool/dispatch.cc) and the client's
// cxlkv::namespace_id (client/page_key.cc) must agree on every byte.
#pragma once

#include <cstdint>
#include <string_view>

namespace cxlkv::wire {

// XXH64 of tenant + '\0' + model, seed 0.
uint64_t namespace_id(std::string_view tenant, std::string_view model);

}  // namespace cxlkv::wire
