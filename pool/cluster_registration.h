// ClusterRegistration: the daemon's membership in an etcd cluster (--cluster etcd://HOST:PORT/NAME;
// DESIGN.md, Cluster). On its own thread it grants an etcd lease, writes this node's record
// (cluster/node_record.h) under it, keeps the lease alive at a third of its TTL and rewrites the
// record when the free space changes (at most once per publish interval). A node that dies leaves
// when its lease runs out; stop() revokes the lease, so a clean stop leaves at once.
// When etcd does not answer, the daemon keeps serving: one warning, retries, and a fresh lease
// and record (same node id, same epoch) once etcd answers again. It also publishes this node's
// prefix directory (cluster/prefix_directory.h): one summary per namespace, under the same lease,
// from the snapshots the I/O thread hands over, at most once per directory interval and only what
// changed. A drain (set_draining) is written into the record at once. Owned by main.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client.h"
#include "node_record.h"
#include "prefix_directory.h"

namespace cxlkv::pool {

struct ClusterOptions {
  cluster::ClusterUrl url;
  std::string node_id;
  std::vector<std::string> endpoints;
  uint32_t lease_ttl_s = 10;
  cluster::ClusterSettings settings;
  std::chrono::milliseconds publish_interval{1000};
  std::chrono::milliseconds directory_interval{2000};  // the prefix directory's publish period, at least
  std::chrono::milliseconds etcd_timeout{2000};
};

class PrefixIndex;

// The keys the prefix directory summarises, per namespace: the index's chunk-start list (pages
// that start a prefix or a chunk; PoolOptions.directory_chunk_pages turns it on). A copy of about
// committed / C keys: the I/O thread takes one at most once per directory interval, and only when
// committed_changes() moved.
std::map<uint64_t, std::vector<PageKey>> directory_snapshot(const PrefixIndex& index);

class ClusterRegistration {
 public:
  // `regions` is called on the registration thread for the record's current regions; it must be
  // safe to call from there (main.cc reads counters the I/O thread publishes).
  ClusterRegistration(ClusterOptions options, uint64_t epoch, std::function<std::vector<cluster::RegionRecord>()> regions);
  ~ClusterRegistration();
  ClusterRegistration(const ClusterRegistration&) = delete;
  ClusterRegistration& operator=(const ClusterRegistration&) = delete;

  // Records the cluster's settings or checks this node's against them, once, before start():
  // kMismatch (the daemon exits) when they differ; kUnavailable when etcd does not answer (the
  // daemon serves on and the check is made at the first registration).
  Status join_settings();
  // Starts the registration thread.
  void start();
  // Revokes the lease (the node leaves at once) and ends the thread.
  void stop();
  // Hands over the keys to summarise, per namespace (the I/O thread's directory_snapshot); the
  // registration thread publishes them. Thread-safe.
  void publish_directory(std::map<uint64_t, std::vector<PageKey>> keys);
  // This node drains (or no longer does): the record says so at once (the thread is woken to
  // rewrite it), so clients stop placing new chunks here. Thread-safe.
  void set_draining(bool draining);
  // The regions changed (a partition added or removed online): the record is written again at
  // once, with what the regions callback returns now.
  void republish();
  // Summaries published so far (each a put to etcd), for tests and the log.
  uint64_t directory_puts() const { return directory_puts_.load(std::memory_order_relaxed); }
  // True while this node's record is in etcd under a live lease, as far as the last answer says.
  bool registered() const { return registered_.load(std::memory_order_acquire); }
  uint64_t epoch() const { return epoch_; }
  const std::string& node_id() const { return options_.node_id; }
  std::chrono::milliseconds directory_interval() const { return options_.directory_interval; }

 private:
  void run();
  // One pass: register if not registered, else keep alive and republish; false when etcd failed.
  bool step(cluster::EtcdClient& etcd, std::chrono::steady_clock::time_point now);
  // Puts the summary of every namespace whose keys changed since the last put, and erases those
  // of namespaces this node no longer holds; the etcd error when one failed.
  Status publish_summaries(cluster::EtcdClient& etcd);
  void report_failure(const Status& st);
  void report_success();

  ClusterOptions options_;
  uint64_t epoch_;
  std::function<std::vector<cluster::RegionRecord>()> regions_;
  std::string key_;
  // The registration thread's own state.
  int64_t lease_ = 0;
  bool settings_checked_ = false;
  bool settings_refused_ = false;
  bool etcd_down_ = false;
  std::string published_;
  std::chrono::steady_clock::time_point next_keepalive_{}, next_publish_{}, next_directory_{};
  std::map<uint64_t, std::vector<PageKey>> directory_keys_;  // the last snapshot taken
  std::map<uint64_t, std::string> directory_published_;      // ns -> the summary etcd holds
  bool directory_dirty_ = false;
  bool directory_failing_ = false;
  std::atomic<uint64_t> directory_puts_{0};
  // Shared with the daemon's threads.
  std::atomic<bool> registered_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<std::map<uint64_t, std::vector<PageKey>>> directory_pending_;  // under mu_
  bool draining_ = false;           // under mu_
  bool republish_ = false;          // under mu_: the record changed, write it now
  std::thread thread_;
};

}  // namespace cxlkv::pool
