// Partition: one region the daemon serves, with everything that is its own: the mapping, its
// metadata region (page records and allocator state, which no session is handed), the slab
// allocator, the PoolService (index, leases, eviction, tenant shares) and the two fds its sessions
// are handed (read-write for writers, O_RDONLY for readers). main.cc opens one per configured
// partition (config.h PartitionSpec) at start; the dispatcher routes each session to its tenant's,
// the server passes that one's fd, and the reaper and metrics walk them all. A tenant's sessions
// map its partition only, so no tenant can load or store the bytes of a tenant bound elsewhere.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config.h"
#include "pool_service.h"

namespace cxlkv::pool {

class Partition {
 public:
  // Creates the region if it does not exist (formats it only under config.format), else opens it
  // as it is; takes its allocator, recovers its slab table, applies the shares of the tenants
  // bound to it (tenant_partitions(config)[t] == index) and announces `epoch` in it, so leases of
  // an earlier daemon fail as expired. Logs where it is, on what pages, and what recovery did.
  static Result<std::unique_ptr<Partition>> open(const PoolConfig& config, const PartitionSpec& spec, uint32_t index,
                                                 const Layout& layout, const PoolOptions& options, uint64_t epoch);
  ~Partition();
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  const std::string& name() const { return name_; }
  // "shm:/cxlkv-pool", where the region is (maybe moved onto hugetlbfs).
  std::string describe() const { return region_->describe(); }
  cxl::Region& region() const { return *region_; }
  SlabAllocator& allocator() const { return *allocator_; }
  PoolService& service() const { return *service_; }
  int writer_fd() const { return writer_fd_; }
  int read_only_fd() const { return read_only_fd_; }
  // The slabs of this partition a tenant's share comes to (0: it has no share of its own).
  uint64_t share_slabs(const Tenant& tenant) const;
  // Gives tenant `t` (the daemon's index of it) its share of this partition's slabs, if it has one.
  void apply_share(uint32_t t, const Tenant& tenant);
  // Before the partition is closed online (online_partitions.h): another epoch is announced in
  // it, so every lease of it, and every reader still mapping it, fails as expired from now on.
  void retire(uint64_t serving_epoch) { allocator_->announce_epoch(~serving_epoch); }

 private:
  Partition() = default;

  std::string name_;
  std::unique_ptr<cxl::Region> region_;
  std::unique_ptr<cxl::Region> metadata_;  // page records and allocator state: mapped here only
  std::unique_ptr<SlabAllocator> allocator_;
  std::unique_ptr<PoolService> service_;
  int writer_fd_ = -1, read_only_fd_ = -1;
};

}  // namespace cxlkv::pool
