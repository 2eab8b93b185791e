// The RDMA transport where this build has no libibverbs: every entry point answers kUnavailable
// naming what is missing (see rdma_transport.h).
#include "rdma_transport.h"

namespace cxlkv::baseline {
namespace {
Status not_built() {
  return Status(Code::kUnavailable, "rdma: this build has no ibverbs (install libibverbs-dev and rebuild)");
}
}  // namespace

bool rdma_built() { return false; }

Result<std::unique_ptr<RdmaService>> RdmaService::open(const RdmaOptions&, const uint8_t*, uint64_t) { return not_built(); }

Result<std::unique_ptr<RangeReader>> connect_rdma(TcpReader&, const RdmaOptions&, uint8_t*, uint64_t) { return not_built(); }

}  // namespace cxlkv::baseline
