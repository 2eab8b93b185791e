// OnlinePartitions: the partitions a running daemon serves, and an admin's changes to them while
// it serves (PartitionControl, dispatch.h). Reload opens the partitions, and adds the tenants,
// that are new in the configuration the daemon was started with (its file read again); a remove
// drains a partition, copies its committed pages into another (page_copy.h) in bounded steps
// posted to the I/O thread (everyone else's requests are served between them), then binds its
// tenants there, closes their sessions and closes it: no restart and no committed page lost. One
// removal at a time; the admin asks again until it says removed.
// main.cc owns it; the reaper, directory and cluster record walk live() on the I/O thread, the
// only thread that changes it (partition indices are never reused: a removed one stays null).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "dispatch.h"
#include "page_copy.h"
#include "partition.h"
#include "server.h"

namespace cxlkv::pool {

class OnlinePartitions : public PartitionControl {
 public:
  // The configuration as it is now (main.cc: the command line and file parsed again).
  using ConfigLoader = std::function<Result<PoolConfig>()>;

  // Opens every partition of `config` (Partition::open); the first that fails is the error.
  static Result<std::unique_ptr<OnlinePartitions>> open(const PoolConfig& config, const Layout& layout,
                                                        const PoolOptions& options, uint64_t epoch, ConfigLoader loader);
  // What the dispatcher and server are built with: the partitions opened at start, by index.
  std::vector<DispatchPartition> dispatch_entries() const;
  std::vector<Server::PartitionFds> fds() const;
  // Once they exist; `on_change` runs (on the I/O thread) after a partition is added or removed;
  // `post` queues work on the I/O thread (a removal's copy steps).
  void attach(Dispatcher& dispatcher, Server& server, std::function<void()> on_change,
              std::function<void(std::function<void()>)> post);
  // Bytes a removal copies per step on the I/O thread: under a millisecond at the dev machine's
  // rate, so a request arriving meanwhile waits a few steps (docs/cluster.md measures it).
  static constexpr uint64_t kCopyStepBytes = 1ull << 20;

  // The partitions served now, by index, removed ones skipped.
  std::vector<Partition*> live() const;

  // The daemon stops: a removal under way copies no more (its partition stays, draining, until
  // the next start serves it as before).
  void stop() { stopping_ = true; }

  Result<Reloaded> reload() override;
  Result<Removed> remove_partition(const std::string& name, const std::string& into) override;

 private:
  OnlinePartitions(PoolConfig config, const Layout& layout, const PoolOptions& options, uint64_t epoch,
                   ConfigLoader loader);
  // The index of the partition named `name`, served or removed; -1: none.
  int index_of(const std::string& name) const;
  // Reload's two halves: the partitions, then the tenants, new in `fresh`.
  Status add_partitions(const PoolConfig& fresh, Reloaded& out);
  void add_tenants(const PoolConfig& fresh, Reloaded& out);
  // A removal's next copy step, then the next post, or its end (finish) once all is copied.
  void copy_step();
  void finish_removal();
  // A removal that cannot go on: the partition is served as before (no longer draining); `why`
  // named as the admin's answer.
  Status end_removal(const Status& why);

  PoolConfig config_;  // as served: its partitions (served_partitions order) and tenants by index
  Layout layout_;
  PoolOptions options_;
  uint64_t epoch_;
  ConfigLoader loader_;
  std::vector<std::unique_ptr<Partition>> partitions_;  // by index; null: removed
  Dispatcher* dispatcher_ = nullptr;
  Server* server_ = nullptr;
  std::function<void()> on_change_;
  std::function<void(std::function<void()>)> post_;
  // The removal under way, if any (draining, then copying), and how the last one ended (answered
  // to the admin asking again).
  struct Removal {
    uint32_t from = 0, to = 0;
    std::unique_ptr<PageCopy> copy;  // null while its write leases are awaited
    std::chrono::steady_clock::time_point started;
  };
  std::optional<Removal> removal_;
  struct Ended {
    std::string name, into;
    Result<Removed> result;
  };
  std::optional<Ended> ended_;
  bool stopping_ = false;
};

}  // namespace cxlkv::pool
