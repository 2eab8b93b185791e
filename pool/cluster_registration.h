// ClusterRegistration: the daemon's membership in an etcd cluster (--cluster etcd://HOST:PORT/NAME;
// DESIGN.md, Cluster). On its own thread it grants an etcd lease, writes this node's record
// (cluster/node_record.h) under it, keeps the lease alive at a third of its TTL and rewrites the
// record when the free space changes (at most once per publish interval). A node that dies leaves
// when its lease runs out; stop() revokes the lease, so a clean stop leaves at once.
// When etcd does not answer, the daemon keeps serving: one warning, retries, and a fresh lease
// and record (same node id, same epoch) once etcd answers again. Owned by main.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client.h"
#include "node_record.h"

namespace cxlkv::pool {

struct ClusterOptions {
  cluster::ClusterUrl url;
  std::string node_id;
  std::vector<std::string> endpoints;
  uint32_t lease_ttl_s = 10;
  cluster::ClusterSettings settings;
  std::chrono::milliseconds publish_interval{1000};
  std::chrono::milliseconds etcd_timeout{2000};
};

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
  // True while this node's record is in etcd under a live lease, as far as the last answer says.
  bool registered() const { return registered_.load(std::memory_order_acquire); }
  uint64_t epoch() const { return epoch_; }

 private:
  void run();
  // One pass: register if not registered, else keep alive and republish; false when etcd failed.
  bool step(cluster::EtcdClient& etcd, std::chrono::steady_clock::time_point now);
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
  std::chrono::steady_clock::time_point next_keepalive_{}, next_publish_{};
  // Shared with the daemon's threads.
  std::atomic<bool> registered_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cxlkv::pool
