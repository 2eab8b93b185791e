#include "cluster_registration.h"

#include <algorithm>
#include <exception>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "prefix_index.h"

namespace cxlkv::pool {

using Clock = std::chrono::steady_clock;

std::map<uint64_t, std::vector<PageKey>> directory_snapshot(const PrefixIndex& index) {
  std::map<uint64_t, std::vector<PageKey>> out;
  for (uint32_t slot : index.chunk_start_slots()) out[index.page(slot).ns].push_back(index.page(slot).key);
  return out;
}

ClusterRegistration::ClusterRegistration(ClusterOptions options, uint64_t epoch,
                                         std::function<std::vector<cluster::RegionRecord>()> regions)
    : options_(std::move(options)), epoch_(epoch), regions_(std::move(regions)),
      key_(cluster::node_key(options_.url, options_.node_id)) {}

ClusterRegistration::~ClusterRegistration() { stop(); }

Status ClusterRegistration::join_settings() {
  cluster::EtcdClient etcd(options_.url.host, options_.url.port, options_.etcd_timeout);
  auto settings = cluster::join_settings(etcd, options_.url, options_.settings);
  if (settings) settings_checked_ = true;
  return settings ? Status::ok() : settings.status();
}

void ClusterRegistration::start() {
  thread_ = std::thread([this] { run(); });
}

void ClusterRegistration::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (lease_ != 0) {
    cluster::EtcdClient etcd(options_.url.host, options_.url.port, options_.etcd_timeout);
    if (Status st = etcd.revoke_lease(lease_); st)
      spdlog::info("cluster {}: node {} left (lease revoked)", options_.url.to_string(), options_.node_id);
    else
      spdlog::warn("cluster {}: node {} could not revoke its lease ({}); it leaves when the lease runs out",
                   options_.url.to_string(), options_.node_id, st.message());
    lease_ = 0;
  }
  registered_.store(false, std::memory_order_release);
}

void ClusterRegistration::set_draining(bool draining) {
  {
    std::lock_guard lock(mu_);
    draining_ = draining;
    republish_ = true;
  }
  wake_.notify_all();
}

void ClusterRegistration::republish() {
  {
    std::lock_guard lock(mu_);
    republish_ = true;
  }
  wake_.notify_all();
}

void ClusterRegistration::run() {
  cluster::EtcdClient etcd(options_.url.host, options_.url.port, options_.etcd_timeout);
  // After a failure, retry soon but not in a tight loop: a quarter of the TTL, within 0.2..2 s.
  const auto retry = std::clamp<std::chrono::milliseconds>(std::chrono::milliseconds(options_.lease_ttl_s * 250),
                                                           std::chrono::milliseconds(200), std::chrono::seconds(2));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    bool ok = false;
    try {
      ok = step(etcd, Clock::now());
    } catch (const std::exception& e) {
      // A record that cannot be encoded or a reply that cannot be read must not end the daemon:
      // it is one more failed round, reported and retried like an unreachable etcd.
      report_failure(Status(Code::kProtocol, fmt::format("cluster registration: {}", e.what())));
    }
    lock.lock();
    if (stopping_) break;
    const auto next = ok ? std::min(next_keepalive_, next_publish_) : Clock::now() + retry;
    // A snapshot handed over wakes the thread early only after a step that reached the directory
    // (a failed or refused one would find it pending again at once and spin).
    const bool directory_reachable = ok && !settings_refused_;
    wake_.wait_until(lock, next, [&] {
      return stopping_ || (directory_reachable && republish_) ||
             (directory_reachable && directory_pending_ && Clock::now() >= next_directory_);
    });
  }
}

bool ClusterRegistration::step(cluster::EtcdClient& etcd, Clock::time_point now) {
  if (settings_refused_) {
    next_keepalive_ = next_publish_ = now + std::chrono::hours(1);
    return true;
  }
  if (!settings_checked_) {
    auto settings = cluster::join_settings(etcd, options_.url, options_.settings);
    if (!settings && settings.status().code() == Code::kMismatch) {
      spdlog::error("{}; this node stays out of the cluster", settings.status().message());
      settings_refused_ = true;
      return true;
    }
    if (!settings) return report_failure(settings.status()), false;
    settings_checked_ = true;
  }
  const auto keepalive_period = std::chrono::milliseconds(options_.lease_ttl_s * 1000 / 3);
  if (lease_ == 0) {
    auto lease = etcd.grant_lease(options_.lease_ttl_s);
    if (!lease) return report_failure(lease.status()), false;
    lease_ = *lease;
    published_.clear();
    directory_published_.clear();  // the summaries went with the old lease
    directory_dirty_ = true;
    next_keepalive_ = now + keepalive_period;
  } else if (now >= next_keepalive_) {
    auto ttl = etcd.keep_alive(lease_);
    if (!ttl && ttl.status().code() == Code::kNotFound) {
      // etcd let the lease run out (it did not hear from us for a whole TTL): the record went
      // with it; register again at once under a new lease.
      spdlog::warn("cluster {}: node {}'s lease ran out; registering again", options_.url.to_string(),
                   options_.node_id);
      lease_ = 0;
      settings_checked_ = false;  // etcd may have lost everything: record the settings again too
      registered_.store(false, std::memory_order_release);
      return step(etcd, now);
    }
    if (!ttl) return report_failure(ttl.status()), false;
    next_keepalive_ = now + keepalive_period;
  }
  bool draining = false, republish = false;
  {
    std::lock_guard lock(mu_);
    draining = draining_;
    republish = std::exchange(republish_, false);
  }
  if (published_.empty() || republish || now >= next_publish_) {
    cluster::NodeRecord record{options_.node_id, epoch_, options_.endpoints, regions_(), draining};
    std::string text = record.to_json();
    if (text != published_) {
      if (Status st = etcd.put(key_, text, lease_); !st) {
        std::lock_guard lock(mu_);
        republish_ = republish_ || republish;  // the change is still to be written: at the next retry
        return report_failure(st), false;
      }
      if (published_.empty())
        spdlog::info("cluster {}: node {} registered, epoch {:016x}, {} endpoint(s), lease TTL {} s",
                     options_.url.to_string(), options_.node_id, epoch_, options_.endpoints.size(),
                     options_.lease_ttl_s);
      published_ = std::move(text);
    }
    next_publish_ = now + options_.publish_interval;
  }
  if (now >= next_directory_) {
    {
      std::lock_guard lock(mu_);
      if (directory_pending_) {
        directory_keys_ = std::move(*directory_pending_);
        directory_pending_.reset();
        directory_dirty_ = true;
      }
    }
    if (directory_dirty_) {
      // A summary that cannot be written leaves the membership as it is (the record and lease
      // stand): it is retried at the next interval, and said once.
      if (Status st = publish_summaries(etcd); !st) {
        if (!directory_failing_)
          spdlog::warn("cluster {}: prefix directory of node {} not published ({}); retrying every {} ms",
                       options_.url.to_string(), options_.node_id, st.message(), options_.directory_interval.count());
        directory_failing_ = true;
      } else {
        directory_failing_ = false;
      }
      next_directory_ = now + options_.directory_interval;
    }
  }
  report_success();
  return true;
}

void ClusterRegistration::publish_directory(std::map<uint64_t, std::vector<PageKey>> keys) {
  {
    std::lock_guard lock(mu_);
    directory_pending_ = std::move(keys);
  }
  wake_.notify_all();
}

Status ClusterRegistration::publish_summaries(cluster::EtcdClient& etcd) {
  for (const auto& [ns, keys] : directory_keys_) {
    std::string summary = cluster::PrefixSummary::build(keys).serialize();
    auto it = directory_published_.find(ns);
    if (it != directory_published_.end() && it->second == summary) continue;
    if (Status st = etcd.put(cluster::directory_key(options_.url, ns, options_.node_id), summary, lease_); !st)
      return st;
    directory_published_[ns] = std::move(summary);
    directory_puts_.fetch_add(1, std::memory_order_relaxed);
  }
  for (auto it = directory_published_.begin(); it != directory_published_.end();) {
    if (directory_keys_.count(it->first)) {
      ++it;
      continue;
    }
    if (Status st = etcd.erase(cluster::directory_key(options_.url, it->first, options_.node_id)); !st)
      return st;
    it = directory_published_.erase(it);
  }
  directory_dirty_ = false;
  return Status::ok();
}

void ClusterRegistration::report_failure(const Status& st) {
  registered_.store(false, std::memory_order_release);
  if (!etcd_down_)
    spdlog::warn("cluster {}: {}; serving on, and registering again once etcd answers", options_.url.to_string(),
                 st.message());
  else
    spdlog::debug("cluster {}: still no answer: {}", options_.url.to_string(), st.message());
  etcd_down_ = true;
}

void ClusterRegistration::report_success() {
  if (etcd_down_) spdlog::info("cluster {}: etcd answers again; node {} registered", options_.url.to_string(),
                               options_.node_id);
  etcd_down_ = false;
  registered_.store(true, std::memory_order_release);
}

}  // namespace cxlkv::pool
