// TcpReader: the baseline's TCP transport, the fallback where no RDMA device exists. One
// connection to cxlkv-bulkd; each batch is one kRead request whose answer is received straight
// into the destination ranges (no staging copy). Also the side channel the RDMA transport uses
// to exchange QP information (exchange()).
#pragma once

#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

#include "range_reader.h"

namespace cxlkv::baseline {

class TcpReader final : public RangeReader {
 public:
  // Connects to cxlkv-bulkd at host:port and asks for the region's Info.
  static Result<std::unique_ptr<TcpReader>> connect(const std::string& host_port);
  ~TcpReader() override;

  const char* name() const override { return "tcp"; }
  const wire::RegionInfo& info() const override { return info_; }
  Status read(std::span<const Range> ranges, uint8_t* local_base, const BatchLimits& limits) override;

  // Sends one request of `op` with `payload`, receives its answer into `answer` (exactly
  // answer_bytes expected on success). A server-side error comes back as its Status.
  Status exchange(wire::Op op, uint32_t count, const void* payload, uint32_t payload_bytes, void* answer,
                  uint64_t answer_bytes);
  int fd() const { return fd_; }

 private:
  TcpReader() = default;
  // Receives an error payload (the server's message) after a non-ok header.
  Status server_error(const wire::ResponseHeader& h);

  int fd_ = -1;
  std::string peer_;
  wire::RegionInfo info_{};
  std::vector<wire::ReadRange> request_;  // reused between batches
  std::vector<Batch> batches_;
  std::vector<iovec> iov_;
};

}  // namespace cxlkv::baseline
