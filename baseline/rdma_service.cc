// The server side of the RDMA baseline: the region registered for remote READ, one RC QP per
// client (see rdma_transport.h).
#include <fmt/format.h>

#include "rdma_transport.h"
#include "rdma_verbs.h"

namespace cxlkv::baseline {
namespace {

class VerbsPeer final : public RdmaPeer {
 public:
  std::unique_ptr<verbs::QueuePair> qp;
};

class VerbsService final : public RdmaService {
 public:
  ~VerbsService() override {
    if (mr_ != nullptr) ibv_dereg_mr(mr_);
  }
  Result<std::unique_ptr<RdmaPeer>> accept(const wire::RdmaEndpoint& client, wire::RdmaAccept& accept) override {
    auto qp = verbs::create_qp(*device_, 4);
    if (!qp) return qp.status();
    if (Status st = verbs::connect_qp(*device_, **qp, client, rd_atomic_); !st) return st;
    accept.endpoint = verbs::endpoint_of(*device_, **qp);
    accept.remote_base = reinterpret_cast<uint64_t>(mr_->addr);
    accept.rkey = mr_->rkey;
    accept.mr_bytes = mr_->length;
    auto peer = std::make_unique<VerbsPeer>();
    peer->qp = std::move(*qp);
    return std::unique_ptr<RdmaPeer>(std::move(peer));
  }
  std::string describe() const override {
    return fmt::format("{} port {} gid {} ({} B registered)", device_->name, device_->port, device_->gid_index, mr_->length);
  }

  std::unique_ptr<verbs::Device> device_;
  ibv_mr* mr_ = nullptr;
  uint8_t rd_atomic_ = 16;
};

}  // namespace

bool rdma_built() { return true; }

Result<std::unique_ptr<RdmaService>> RdmaService::open(const RdmaOptions& options, const uint8_t* base, uint64_t bytes) {
  auto device = verbs::open_device(options);
  if (!device) return device.status();
  auto svc = std::make_unique<VerbsService>();
  svc->device_ = std::move(*device);
  ibv_device_attr attr{};
  if (ibv_query_device(svc->device_->context, &attr) == 0 && attr.max_qp_rd_atom > 0)
    svc->rd_atomic_ = uint8_t(std::min(attr.max_qp_rd_atom, 16));
  // READ-only registration: the mapping is PROT_READ and the NIC may only read it.
  svc->mr_ = ibv_reg_mr(svc->device_->pd, const_cast<uint8_t*>(base), bytes, IBV_ACCESS_REMOTE_READ);
  if (svc->mr_ == nullptr) return io_error(fmt::format("rdma: register the region ({} B) for remote read on {}", bytes, svc->device_->name));
  return std::unique_ptr<RdmaService>(std::move(svc));
}

}  // namespace cxlkv::baseline
