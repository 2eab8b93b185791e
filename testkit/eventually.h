// eventually(): polls a condition until it holds or a time limit passes, for tests that wait on
// another process (a daemon's timers, etcd's lease expiry) without sleeping a fixed time.
#pragma once

#include <chrono>
#include <thread>

namespace cxlkv::testing {

// True once `done()` holds, checked every `period` for up to `limit` (and once more at the end).
template <typename F>
bool eventually(F done, std::chrono::milliseconds limit,
                std::chrono::milliseconds period = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(period);
  }
  return done();
}

}  // namespace cxlkv::testing
