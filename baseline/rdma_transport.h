// The RDMA side of the baseline, behind types that need no ibverbs header: the server's
// registration of the region (RdmaService, one RC queue pair per client) and the client's
// transport (connect_rdma, a RangeReader posting RC RDMA READs). Built over ibverbs
// (rdma_verbs.cc, rdma_reader.cc, rdma_service.cc) where libibverbs is found, else stubbed
// (rdma_stub.cc: every call answers kUnavailable). Works on a real NIC and on Soft-RoCE (rxe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bulk_wire.h"
#include "range_reader.h"

namespace cxlkv::baseline {

class TcpReader;

// Which device and port to use.
struct RdmaOptions {
  std::string device;   // "" = the first device found ("rxe0", "mlx5_0")
  uint8_t port = 1;
  int gid_index = -1;   // -1 = the first IPv4-mapped GID (RoCE v2), else index 0
  uint32_t queue_depth = 128;  // READ work requests in flight per queue pair
};

// True when this build has the ibverbs transport.
bool rdma_built();

// One client's queue pair on the server; closing it destroys the QP.
class RdmaPeer {
 public:
  virtual ~RdmaPeer() = default;
};

// The server's device, protection domain and the region registered for remote READ only.
class RdmaService {
 public:
  // Opens the device and registers [base, base + bytes) with IBV_ACCESS_REMOTE_READ.
  static Result<std::unique_ptr<RdmaService>> open(const RdmaOptions& options, const uint8_t* base, uint64_t bytes);
  virtual ~RdmaService() = default;
  // Creates a QP for the client's endpoint, brings it to RTS, and fills `accept`.
  virtual Result<std::unique_ptr<RdmaPeer>> accept(const wire::RdmaEndpoint& client, wire::RdmaAccept& accept) = 0;
  // "rxe0 port 1 gid 1".
  virtual std::string describe() const = 0;
};

// Opens the device, creates a QP, registers [local, local + local_bytes) for local write, and
// exchanges endpoints over the side channel. read() then posts RC READs into that buffer; a
// read into memory outside it registers that memory for the call (slow path).
Result<std::unique_ptr<RangeReader>> connect_rdma(TcpReader& side_channel, const RdmaOptions& options, uint8_t* local,
                                                  uint64_t local_bytes);

}  // namespace cxlkv::baseline
