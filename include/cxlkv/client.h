// Client: one session with a pool daemon (docs/protocol.md) and the mapping of its region.
// Prefill workers reserve, write and commit pages; decode workers look prefixes up and read
// through the returned ReadLease (read_lease.h). The control connection is serialized by a
// mutex, so one Client may be shared by threads; the data plane never touches it.
// Nothing here throws: every failure is a Status naming the problem and the value.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cxlkv/layout.h"
#include "cxlkv/page_key.h"
#include "cxlkv/pool_view.h"
#include "cxlkv/read_lease.h"
#include "cxlkv/status.h"
#include "cxlkv/write_lease.h"

namespace cxlkv {

namespace detail {
class Session;
class ClusterRouter;
}

struct ClientOptions {
  // "unix:/path", "tcp:host:port" or "tls:host:port" (TCP with TLS, the daemon's certificate
  // checked): one daemon. "etcd://HOST:PORT/NAME": the memory nodes of a
  // cluster (docs/cluster.md), found in etcd; prefixes are placed over them in chunks, and
  // leases may span them (ReadLease::nodes()). The other options apply to every node.
  std::string endpoint = "unix:/run/cxlkv/pool.sock";
  std::string tenant;
  std::string token;
  std::string model;            // namespace = (tenant, model)
  bool want_fd = true;          // Unix socket: map the region by the fd the daemon passes
  std::string region_path;      // map by this path instead of RegionInfo.path (another host's name)
  int io_timeout_ms = 30000;    // per connect, send and receive on the control connection
  bool populate = true;         // fault the whole mapping in at connect (MADV_POPULATE_WRITE), so
                                // no gather or write takes a page fault later
  bool read_only = false;       // a reader session: lookups and reads only, the region mapped
                                // read-only (a store through it faults); the tenant must be allowed it
  bool admin = false;           // an admin session: AdminClient only (cxlkv/admin.h; it maps nothing),
                                // Client::connect refuses it
  int cluster_poll_ms = 5000;   // etcd:// only: membership is re-read (and nodes that did not answer
                                // are tried again) this often; changes are heard at once by a watch
  int cluster_directory_max_age_ms = 30000;  // etcd:// only: a lookup that falls short asks where
                                // the prefix directory says the missing chunks are, read again once
                                // it is this old (a full read of the namespace's summaries); 0: never
  std::string tls_ca_file;      // tls: endpoints: PEM file of the CAs that may sign a daemon's
                                // certificate; empty: the system's trusted CAs. Set, a cluster
                                // client refuses nodes off this host that offer only plain TCP
};

// The daemon's counters (StatsResponse).
struct PoolStats {
  uint64_t pages_committed = 0, pages_reserved = 0;
  uint64_t slabs_total = 0, slabs_free = 0;
  uint64_t read_leases = 0, write_leases = 0;
  uint64_t lookup_hits = 0, lookup_misses = 0, evictions = 0;
};

// What Client::move_off_draining did (docs/cluster.md, Draining a node).
struct MoveReport {
  uint32_t draining_nodes = 0;   // draining nodes whose pages of this namespace were listed
  uint64_t pages_listed = 0;     // this namespace's committed pages on them
  uint64_t pages_moved = 0;      // written and committed on the node placement names now
  uint64_t pages_already_there = 0;  // that node held them already
  uint64_t pages_removed = 0;    // taken off the draining nodes after the copies committed
  uint64_t pages_left = 0;       // still only there, or still there too: gone meanwhile, being
                                 // written elsewhere, or pinned by a reader (run it again)
};

// What Hello told us, and how the region was mapped.
struct SessionInfo {
  uint64_t session = 0;
  uint64_t namespace_id = 0;
  uint32_t read_lease_ttl_ms = 0, write_lease_ttl_ms = 0;
  uint32_t max_keys = 0;
  bool mapped_by_fd = false;
  bool populated = false;  // the mapping was faulted in at connect
  std::string region;  // "shm:/cxlkv-pool"
  // This host's record of the slab generations its readers made safe (coherence rule 2): the
  // shared-memory object's name, or "private: <why>" where it could not be shared.
  std::string coherence_record;
};

class Client {
 public:
  // Connects, says hello, maps the region (by fd or by path) and checks its uuid and layout
  // against the daemon's RegionInfo. With an etcd:// endpoint, does so for every node of the
  // cluster; info(), layout() and view() are then the first node's.
  static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const SessionInfo& info() const;
  const Layout& layout() const;
  const PoolView& view() const;
  uint32_t page_tokens() const { return view().page_tokens; }
  // Keys of the whole pages of `tokens` in this session's namespace (page_key.h).
  std::vector<PageKey> page_keys(std::span<const int32_t> tokens, const PageKey& parent = PageKey{}) const;

  // Write path. reserve: slots for keys[i] = page i of a prefix run whose page before keys[0]
  // has key `parent` (zero at the root). Pages already cached or being written are flagged.
  Result<WriteLease> reserve(const PageKey& parent, std::span<const PageKey> keys);
  Status write_entries(WriteLease& lease, uint32_t page, int stream, uint32_t layer, const void* packed,
                       uint32_t entries) {
    return lease.write_entries(page, stream, layer, packed, entries);
  }
  // Fences the lease's stores, then publishes every writable page with its checksum. Every
  // (stream, layer) run of every writable page must have been written. Returns pages committed.
  Result<uint32_t> commit(WriteLease& lease);
  Status abort(WriteLease& lease);

  // Read path. The longest committed prefix of keys in this namespace, pinned by a read lease
  // (an empty lease when the first key misses). Invalidates a slab's lines here, once, when this
  // client saw an older generation of it (coherence rule 2). Over a cluster, a prefix that falls
  // short is also asked for where the prefix directory says its missing chunks are (chunks written
  // before the membership or a node's capacity changed: docs/cluster.md, "Lookups that fall short").
  Result<ReadLease> lookup(std::span<const PageKey> keys);
  Result<uint32_t> renew(ReadLease& lease) { return lease.renew(); }
  Status release(ReadLease& lease) { return lease.release(); }

  // Frees committed, unpinned pages of this namespace; returns how many.
  Result<uint32_t> remove(std::span<const PageKey> keys);
  // The daemon's counters; over a cluster, the sum of the nodes that answer.
  Result<PoolStats> stats();

  // Over a cluster: moves this namespace's pages off every draining node (cxlkv-admin drain) to
  // the node that places their chunk now, byte for byte through the same leases as any writer,
  // then removes them from the draining node, so the node can be stopped with no committed page
  // lost. Reads go on meanwhile and find every prefix whole (the copies commit before any page
  // is removed). Run it for each namespace (tenant, model) the node holds. kInvalidArgument on a
  // single endpoint; the first failure otherwise (what committed before it stays committed).
  Result<MoveReport> move_off_draining();

  // Over a cluster: the memory nodes in use now, and the pages per placement chunk; one node and
  // 0 for a single endpoint.
  uint32_t cluster_nodes() const;
  uint32_t chunk_pages() const;

 private:
  Client(std::shared_ptr<detail::Session> session, std::unique_ptr<detail::ClusterRouter> router);
  std::shared_ptr<detail::Session> session_;
  std::unique_ptr<detail::ClusterRouter> router_;  // set for an etcd:// endpoint
};

}  // namespace cxlkv
