// EtcdWatch: one watch on a key prefix through etcd's v3 JSON gateway (POST /v3/watch, a response
// that streams one JSON object per line for as long as the watch lives). Owns that connection and
// the io_context it runs on. run() blocks on the calling thread and calls back on every change;
// stop() ends it from any thread. Used by the cluster client (client/cluster_router.cc) to hear
// of nodes joining, leaving and restarting at once instead of at its next poll.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cxlkv/status.h"

namespace cxlkv::cluster {

class EtcdWatch {
 public:
  // `connect_timeout` bounds resolving, connecting and the watch's creation; once created the
  // watch waits for events with no deadline.
  EtcdWatch(std::string host, uint16_t port, std::chrono::milliseconds connect_timeout = std::chrono::seconds(2));
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // Watches every key under `prefix`. Calls on_change() once when the watch is created (a change
  // between the caller's last read and the creation is not lost) and once per batch of events.
  // Returns ok after stop(); otherwise the error that ended the watch (etcd unreachable, the
  // stream closed, a reply that is not a watch response), naming the address.
  Status run(std::string_view prefix, const std::function<void()>& on_change);
  // Ends run() (now, or as soon as it starts). Thread-safe; run() cannot be called again after.
  void stop();

 private:
  struct State;
  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds connect_timeout_;
  std::unique_ptr<State> state_;
};

}  // namespace cxlkv::cluster
