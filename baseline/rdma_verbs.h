// Thin ibverbs helpers shared by the RDMA server and client of the baseline: open a device and
// pick its GID, create an RC queue pair, and walk it RESET -> INIT -> RTR -> RTS against a peer's
// endpoint. Internal to baseline/ (includes <infiniband/verbs.h>); compiled only with libibverbs.
#pragma once

#include <infiniband/verbs.h>

#include <memory>
#include <string>

#include "bulk_wire.h"
#include "cxlkv/status.h"
#include "rdma_transport.h"

namespace cxlkv::baseline::verbs {

// An open device with one protection domain; the port's attributes and the chosen GID.
struct Device {
  ibv_context* context = nullptr;
  ibv_pd* pd = nullptr;
  ibv_port_attr port_attr{};
  ibv_gid gid{};
  uint8_t port = 1;
  uint8_t gid_index = 0;
  std::string name;
  ~Device();
};

// Opens options.device (or the first one) and allocates a PD.
Result<std::unique_ptr<Device>> open_device(const RdmaOptions& options);

// An RC queue pair with its own completion queue.
struct QueuePair {
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  uint32_t psn = 0;
  ~QueuePair();
};

// Creates an RC QP of `depth` send work requests (receive side unused) and moves it to INIT
// with remote READ allowed.
Result<std::unique_ptr<QueuePair>> create_qp(Device& device, uint32_t depth);
// This side's endpoint for the peer.
wire::RdmaEndpoint endpoint_of(const Device& device, const QueuePair& qp);
// INIT -> RTR -> RTS against `remote`; `rd_atomic` READs may be outstanding in each direction.
Status connect_qp(Device& device, QueuePair& qp, const wire::RdmaEndpoint& remote, uint8_t rd_atomic);

}  // namespace cxlkv::baseline::verbs
