// Dispatcher: turns one received message (the bytes after a frame header) into one response,
// for one session: verifies the FlatBuffer, checks the session (Hello first, tenant tokens),
// counts and ids, calls PoolService and builds the Response. The server calls it for every
// frame; tests may call it with bytes, no socket needed. It never throws and never trusts a byte
// before wire::verify_request. A session is served by its tenant's partition (partition.h) alone.
// It also holds the node's drain state (an admin's Drain): a draining node refuses Reserve; and
// the partitions and tenants served, which an admin's Reload and RemovePartition change online.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "config.h"
#include "metrics.h"
#include "pool_service.h"

namespace cxlkv::pool {

// One connection's state.
struct Session {
  uint64_t id = 0;  // 0 until Hello succeeds
  uint64_t ns = 0;
  std::string tenant;
  bool unix_socket = false;  // the region fd may be passed
  bool reader = false;       // role Reader: no reserve, commit, abort or remove; a read-only fd
  uint32_t partition = 0;    // the partition serving it (its tenant's): whose fd it is handed
  bool admin = false;        // role Admin: no fd, no page ops; Stats of every partition, Partitions
};

// One partition as the dispatcher serves it (partition.h owns it).
struct DispatchPartition {
  std::string name;
  PoolService* service = nullptr;  // null once the partition was removed (its index stays taken)
  bool draining = false;           // being removed: its sessions' reserves are refused
};

// What an admin's Reload and RemovePartition change beyond the dispatcher's own state (opening
// and closing partitions, their fds and sessions): online_partitions.h implements it; a
// dispatcher without one answers those ops `unavailable`.
class PartitionControl {
 public:
  virtual ~PartitionControl() = default;
  struct Reloaded {
    std::vector<std::string> partitions_added, tenants_added, not_applied;
  };
  virtual Result<Reloaded> reload() = 0;
  struct Removed {
    bool removed = false;
    uint64_t write_leases = 0, pages_copied = 0, pages_already_there = 0, bytes_copied = 0, sessions_closed = 0;
    std::vector<std::string> tenants_moved;
    double copy_seconds = 0;
  };
  virtual Result<Removed> remove_partition(const std::string& name, const std::string& into) = 0;
};

struct DispatchOutcome {
  bool close = false;    // close the connection after sending the reply
  bool pass_fd = false;  // send the region fd with the reply (Hello with want_fd on a Unix socket);
                         // the O_RDONLY one when the session is a reader
};

class Dispatcher {
 public:
  // partitions[i] is partition i; tenant t's sessions go to partitions[tenant_partition[t]] (under
  // open auth, no tenants: to partitions[0]). max_sessions_per_tenant: a Hello past it is refused
  // with `exhausted`. Every service has the same options (max_keys, TTLs).
  Dispatcher(std::vector<DispatchPartition> partitions, std::vector<Tenant> tenants,
             std::vector<uint32_t> tenant_partition, Metrics& metrics, uint32_t max_sessions_per_tenant);

  // Handles the message msg[0..size) of `session`; the finished Response is in `fbb`.
  DispatchOutcome handle(Session& session, const uint8_t* msg, size_t size, flatbuffers::FlatBufferBuilder& fbb);

  // The connection of an authenticated session has closed (its leases live on until their TTL).
  void end_session(const Session& session);
  // Whether the session holds a live lease (an idle session that does is not closed).
  bool holds_leases(const Session& session) const;

  // Called (on the I/O thread) when an admin starts or ends a drain, after the dispatcher has;
  // main.cc republishes the node's record with it.
  void set_drain_listener(std::function<void(bool draining)> listener) { on_drain_ = std::move(listener); }
  bool draining() const { return draining_; }

  // The partitions and tenants served now, for OnlinePartitions (indices never reused).
  void set_partition_control(PartitionControl* control) { control_ = control; }
  const std::vector<DispatchPartition>& served() const { return partitions_; }
  const std::vector<Tenant>& tenants() const { return tenants_; }
  const std::vector<uint32_t>& tenant_partitions() const { return tenant_partition_; }
  // A partition opened online: its index. A tenant added online, bound to `partition`: its index.
  uint32_t add_partition(DispatchPartition partition);
  uint32_t add_tenant(Tenant tenant, uint32_t partition);
  void set_partition_draining(uint32_t partition, bool draining) { partitions_[partition].draining = draining; }
  // Binds the tenants of `from` to `to` (new sessions go there); returns their indices.
  std::vector<uint32_t> move_tenants(uint32_t from, uint32_t to);
  // The partition is closed: a request of a session still on it answers `expired` and closes it.
  void retire_partition(uint32_t partition) { partitions_[partition].service = nullptr; }

  // A Response with an error only (for frames refused before handle()).
  static void error_response(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const Status& status);

 private:
  struct Reply;
  void hello(Session& s, const wire::HelloRequest* r, Reply& reply);
  void reserve(Session& s, const wire::ReserveRequest* r, Reply& reply);
  void commit(Session& s, const wire::CommitRequest* r, Reply& reply);
  void lookup(Session& s, const wire::LookupRequest* r, Reply& reply);
  void stats(const Session& s, Reply& reply);
  void partitions(Reply& reply);
  void drain(const wire::DrainRequest* r, Reply& reply);
  void list_pages(const Session& s, const wire::ListPagesRequest* r, Reply& reply);
  void reload(Reply& reply);
  void remove_partition(const wire::RemovePartitionRequest* r, Reply& reply);
  PoolService& service(const Session& s) const { return *partitions_[s.partition].service; }
  // kInvalidArgument when a key vector is larger than max_keys; names the op and the count.
  Status check_count(const char* op, uint32_t n) const;

  std::vector<DispatchPartition> partitions_;
  std::vector<Tenant> tenants_;
  std::vector<uint32_t> tenant_partition_;
  Metrics& metrics_;
  std::vector<wire::Placement> placements_;  // scratch, max_keys long, so replies do not allocate
  uint32_t max_sessions_per_tenant_;
  std::unordered_map<std::string, uint32_t> sessions_per_tenant_;
  // Draining: every Reserve is refused so no new page lands here; the rest is served as ever.
  bool draining_ = false;
  std::function<void(bool)> on_drain_;
  PartitionControl* control_ = nullptr;
};

}  // namespace cxlkv::pool
