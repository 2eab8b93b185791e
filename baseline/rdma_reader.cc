// The client side of the RDMA baseline: RC RDMA READs of planned ranges into a registered local
// buffer (see rdma_transport.h). Each batch is posted as chains of up to queue_depth work requests
// (one ibv_post_send per chain, all signaled), refilled as completions arrive, and waited on as a
// whole: one batch is one dependent round trip of the fetch.
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "rdma_transport.h"
#include "rdma_verbs.h"
#include "tcp_reader.h"

namespace cxlkv::baseline {
namespace {

class VerbsReader final : public RangeReader {
 public:
  ~VerbsReader() override {
    qp_.reset();
    if (mr_ != nullptr) ibv_dereg_mr(mr_);
  }
  const char* name() const override { return "rdma"; }
  const wire::RegionInfo& info() const override { return info_; }

  Status read(std::span<const Range> ranges, uint8_t* local_base, const BatchLimits& limits) override {
    if (ranges.empty()) return Status::ok();
    // Destinations outside the buffer registered at connect (e.g. the page records a
    // verification reads) get a registration of their own for this call: slow path, not timed.
    uint64_t lo = ~uint64_t{0}, hi = 0;
    for (const Range& r : ranges) lo = std::min(lo, r.local), hi = std::max(hi, r.local + r.length);
    ibv_mr* mr = mr_;
    ibv_mr* temporary = nullptr;
    if (local_base + lo < local_ || local_base + hi > local_ + local_bytes_) {
      temporary = ibv_reg_mr(device_->pd, local_base + lo, hi - lo, IBV_ACCESS_LOCAL_WRITE);
      if (temporary == nullptr) return io_error(fmt::format("rdma read: register a destination of {} B", hi - lo));
      mr = temporary;
    }
    const Status st = read_all(ranges, local_base, limits, mr);
    if (temporary != nullptr) ibv_dereg_mr(temporary);
    return st;
  }

  Status read_all(std::span<const Range> ranges, uint8_t* local_base, const BatchLimits& limits, ibv_mr* mr) {
    split_batches(ranges, limits.max_ranges, limits.max_bytes, batches_);
    for (const Batch& b : batches_) {
      if (Status st = read_batch(ranges.subspan(b.first, b.count), local_base, mr); !st) return st;
      counts_.bytes += b.bytes;
      counts_.messages += b.count;
      counts_.batches += 1;
    }
    return Status::ok();
  }

  // Posts every range of one batch, keeping at most depth_ in flight, and waits for all.
  Status read_batch(std::span<const Range> ranges, uint8_t* local_base, ibv_mr* mr) {
    size_t posted = 0, done = 0;
    while (done < ranges.size()) {
      const size_t room = depth_ - (posted - done);
      const size_t n = std::min(room, ranges.size() - posted);
      if (n > 0) {
        for (size_t i = 0; i < n; ++i) {
          const Range& r = ranges[posted + i];
          uint8_t* dst = local_base + r.local;
          if (r.remote + r.length > remote_bytes_)
            return Status(Code::kInvalidArgument, fmt::format("rdma read: range [{}, +{}) is outside the remote region of {} B",
                                                              r.remote, r.length, remote_bytes_));
          sge_[i] = {reinterpret_cast<uint64_t>(dst), r.length, mr->lkey};
          ibv_send_wr& wr = wr_[i];
          wr = {};
          wr.wr_id = posted + i;
          wr.sg_list = &sge_[i];
          wr.num_sge = 1;
          wr.opcode = IBV_WR_RDMA_READ;
          wr.send_flags = IBV_SEND_SIGNALED;
          wr.wr.rdma.remote_addr = remote_base_ + r.remote;
          wr.wr.rdma.rkey = rkey_;
          wr.next = i + 1 < n ? &wr_[i + 1] : nullptr;
        }
        ibv_send_wr* bad = nullptr;
        if (ibv_post_send(qp_->qp, wr_.data(), &bad) != 0)
          return io_error(fmt::format("rdma read: post {} READs (first wr {})", n, posted));
        posted += n;
      }
      ibv_wc wc[32];
      const int got = ibv_poll_cq(qp_->cq, 32, wc);
      if (got < 0) return Status(Code::kIoError, "rdma read: poll CQ failed");
      for (int i = 0; i < got; ++i)
        if (wc[i].status != IBV_WC_SUCCESS)
          return Status(Code::kIoError, fmt::format("rdma read: wr {} completed with {} ({})", wc[i].wr_id,
                                                    ibv_wc_status_str(wc[i].status), int(wc[i].status)));
      done += size_t(got);
    }
    return Status::ok();
  }

  std::unique_ptr<verbs::Device> device_;
  std::unique_ptr<verbs::QueuePair> qp_;
  ibv_mr* mr_ = nullptr;
  uint8_t* local_ = nullptr;
  uint64_t local_bytes_ = 0;
  uint64_t remote_base_ = 0, remote_bytes_ = 0;
  uint32_t rkey_ = 0;
  size_t depth_ = 128;
  wire::RegionInfo info_{};
  std::vector<ibv_send_wr> wr_;
  std::vector<ibv_sge> sge_;
  std::vector<Batch> batches_;
};

}  // namespace

Result<std::unique_ptr<RangeReader>> connect_rdma(TcpReader& side_channel, const RdmaOptions& options, uint8_t* local,
                                                  uint64_t local_bytes) {
  if ((side_channel.info().flags & wire::kInfoRdma) == 0)
    return Status(Code::kUnavailable, "rdma: this cxlkv-bulkd serves TCP only (start it with --rdma)");
  auto device = verbs::open_device(options);
  if (!device) return device.status();
  auto r = std::make_unique<VerbsReader>();
  r->device_ = std::move(*device);
  r->info_ = side_channel.info();
  r->depth_ = options.queue_depth;
  r->wr_.resize(r->depth_);
  r->sge_.resize(r->depth_);
  uint8_t rd_atomic = 16;
  ibv_device_attr attr{};
  if (ibv_query_device(r->device_->context, &attr) == 0 && attr.max_qp_rd_atom > 0)
    rd_atomic = uint8_t(std::min(attr.max_qp_rd_atom, 16));
  // Registration is setup, not fetch time: RDMA pools register their buffers once at start.
  r->mr_ = ibv_reg_mr(r->device_->pd, local, local_bytes, IBV_ACCESS_LOCAL_WRITE);
  if (r->mr_ == nullptr) return io_error(fmt::format("rdma: register the local buffer ({} B)", local_bytes));
  r->local_ = local;
  r->local_bytes_ = local_bytes;
  auto qp = verbs::create_qp(*r->device_, uint32_t(r->depth_));
  if (!qp) return qp.status();
  r->qp_ = std::move(*qp);
  const wire::RdmaEndpoint mine = verbs::endpoint_of(*r->device_, *r->qp_);
  wire::RdmaAccept theirs{};
  if (Status st = side_channel.exchange(wire::kRdmaConnect, 1, &mine, sizeof mine, &theirs, sizeof theirs); !st) return st;
  if (Status st = verbs::connect_qp(*r->device_, *r->qp_, theirs.endpoint, rd_atomic); !st) return st;
  r->remote_base_ = theirs.remote_base;
  r->remote_bytes_ = theirs.mr_bytes;
  r->rkey_ = theirs.rkey;
  return std::unique_ptr<RangeReader>(std::move(r));
}

}  // namespace cxlkv::baseline
