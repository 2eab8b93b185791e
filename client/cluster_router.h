// ClusterRouter: what a Client connected to "etcd://HOST:PORT/NAME" does instead of talking to one
// daemon (docs/cluster.md). It reads the cluster's membership from etcd, watches it (a second
// thread holds an etcd watch on the node records and wakes the refresher on every change) and
// re-reads it every cluster_poll_ms besides on a thread of its own, keeps one Session per memory node, places each chunk (C pages on
// average, cut where the keys say) on the node that capacity-weighted rendezvous hashing of the
// chunk's first key names (cluster/placement.h), and builds leases that span nodes: a reserve is
// one reserve per chunk on its node (a reserve that extends a prefix puts its first run beside its
// parent page, wherever that is); a lookup asks every node holding chunks of the prefix at once,
// and the prefix found is the chunks up to the first miss. A node that does not answer costs misses (lookup) or an
// unavailable error naming it (reserve), never a wrong byte; it is connected again once it
// answers. A draining node (its record says so) gets no new chunk; lookups that fall short ask
// again where chunks were placed before the drain, then where the prefix directory says the
// missing chunks are (a node that joined, or whose capacity changed, moved their placement; the
// pages stayed where they were written). The directory is read by a third thread, at most once
// per cluster_directory_max_age_ms and only while lookups fall short: a lookup never waits on
// etcd, and neither a slow directory read (a large namespace, etcd slow to answer) nor a
// membership poll waiting on a node's connect holds up the other. Internal to
// client/; Client owns one when its endpoint is etcd://.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/client.h"
#include "etcd_client.h"
#include "etcd_watch.h"
#include "node_record.h"
#include "placement.h"
#include "prefix_directory.h"

namespace cxlkv::detail {

class Session;

class ClusterRouter {
 public:
  // Reads the cluster's settings and nodes, connects to every node (at least one must answer and
  // every connected node must serve the first one's layout), starts the refresher, the watcher
  // and the directory reader.
  static Result<std::unique_ptr<ClusterRouter>> open(const ClientOptions& options);
  ~ClusterRouter();
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  // The first node connected: its layout and mapping are the Client's view().
  const std::shared_ptr<Session>& primary() const { return primary_; }
  uint32_t chunk_pages() const { return chunk_pages_; }

  Result<WriteLease> reserve(const PageKey& parent, std::span<const PageKey> keys);
  Result<ReadLease> lookup(std::span<const PageKey> keys);
  Result<uint32_t> remove(std::span<const PageKey> keys);
  Result<PoolStats> stats();
  // The nodes as placement sees them now (id and capacity), in membership order.
  std::vector<cluster::PlacementNode> placement_nodes() const;

  // One member as this client knows it.
  struct Node;
  // Consecutive pages of one prefix (keys[0]'s page before it is `parent`) to move from a
  // draining node to the node new chunks of their chunk are placed on now (indices in `nodes`).
  struct MoveRun {
    size_t from = 0, to = 0;
    PageKey parent{};
    std::vector<PageKey> keys;
  };
  struct MovePlan;
  // What this client's namespace holds on every draining node (ListPages), cut into runs in an
  // order that moves a page's parent before it. Cold: an operator's move.
  Result<MovePlan> plan_move();
  // A read lease on the leading pages of `keys` that `node` holds; a write lease reserved on
  // `node` alone (a lease over nodes, so Client::commit publishes it through that node's session).
  Result<ReadLease> lookup_on(const Node& node, std::span<const PageKey> keys);
  Result<WriteLease> reserve_on(const Node& node, const PageKey& parent, std::span<const PageKey> keys);
  // Removes `keys` from `node` (in requests of at most its max_keys); how many it removed.
  Result<uint32_t> remove_on(const Node& node, std::span<const PageKey> keys);

  struct Node {
    std::string id;
    uint64_t epoch = 0;
    uint64_t weight = 0;                // capacity in bytes; 0 for a node this client cannot use
    std::vector<std::string> endpoints;
    std::shared_ptr<Session> session;  // null while it does not answer
    std::string why_not;               // why session is null
    bool draining = false;             // takes no new chunk; still serves those it holds
  };
  struct MovePlan {
    std::vector<Node> nodes;  // the membership the plan was made on
    std::vector<MoveRun> runs;
    uint32_t draining = 0;    // draining nodes listed
    uint64_t pages = 0;       // pages listed on them
  };

 private:

  ClusterRouter() = default;
  // Reads the membership and (re)connects nodes that are new, restarted (another epoch) or were
  // unreachable; nodes that left are dropped (their sessions live on in the leases that hold them).
  Status refresh();
  // Connects to one node at the endpoint this host can reach (its Unix socket if present here,
  // else TCP) and checks it serves the primary's layout.
  Result<std::shared_ptr<Session>> connect_node(const cluster::NodeRecord& record) const;
  std::vector<Node> snapshot() const;
  // The lookup of `keys` cut into `chunks`, each asked of its node in `nodes`.
  Result<ReadLease> lookup_chunks(std::span<const PageKey> keys, const std::vector<Node>& nodes,
                                  const std::vector<cluster::ChunkPlacement>& chunks);
  // The prefix directory of this client's namespace as last read (null before the first read, or
  // when turned off); asks the directory reader to read it again once it is older than its max age.
  std::shared_ptr<const std::map<std::string, cluster::PrefixSummary>> directory_for_lookup();
  // Reads this client's namespace's summaries from etcd (the directory reader, when a lookup asked).
  void refresh_directory();
  // Waits for lookups to ask for the directory and reads it (a thread of its own when enabled).
  void directory_reader();
  // The index in `nodes` of a node that holds `key` committed (all nodes asked at once); -1 if none.
  int node_holding(const PageKey& key, const std::vector<Node>& nodes);
  // reserve, placed over the membership as this client knows it now.
  Result<WriteLease> reserve_placed(const PageKey& parent, std::span<const PageKey> keys);
  // A node answered a reserve `busy` (it drains): place nothing more there, and re-read the records.
  void mark_draining(const std::string& node_id);
  // A call to a node failed: drop its session so the refresher connects it again.
  void mark_failed(const std::string& node_id, const std::shared_ptr<Session>& session, const Status& why);
  void refresher();
  // Holds an etcd watch on the node records; each change wakes the refresher.
  void watcher();

  ClientOptions options_;
  cluster::ClusterUrl url_;
  uint32_t chunk_pages_ = 16;
  std::shared_ptr<Session> primary_;

  mutable std::mutex mu_;  // guards nodes_, stopping_, changed_, watch_ and directory*_
  std::vector<Node> nodes_;
  bool stopping_ = false;
  bool changed_ = false;                // the watch heard a change the refresher has not read
  bool directory_due_ = false;          // a lookup fell short and the directory is old: read it
  std::shared_ptr<const std::map<std::string, cluster::PrefixSummary>> directory_;  // by node id
  // Last read (or tried); none yet: the first short lookup asks at once (steady_clock counts from
  // boot, so a zero time point would hold a freshly booted host's lookups off for the max age).
  std::optional<std::chrono::steady_clock::time_point> directory_read_at_;
  cluster::EtcdWatch* watch_ = nullptr;  // the watch in progress, to stop it
  std::condition_variable wake_;
  std::thread thread_;
  std::thread watch_thread_;
  std::thread directory_thread_;  // only with cluster_directory_max_age_ms > 0
};

}  // namespace cxlkv::detail
