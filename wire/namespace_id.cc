// wire::namespace_id (namespace_id.h).
#include "namespace_id.h"

#include <xxhash.h>

#include <string>

namespace cxlkv::wire {

uint64_t namespace_id(std::string_view tenant, std::string_view model) {
  std::string joined;
  joined.reserve(tenant.size() + 1 + model.size());
  joined.append(tenant).push_back('\0');
  joined.append(model);
  return XXH64(joined.data(), joined.size(), 0);
}

}  // namespace cxlkv::wire
