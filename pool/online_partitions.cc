// OnlinePartitions (online_partitions.h).
#include "online_partitions.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>


namespace cxlkv::pool {

namespace {

bool same_region(const PartitionSpec& a, const PartitionSpec& b) {
  return a.region.backend == b.region.backend && a.region.path == b.region.path && a.region.size == b.region.size &&
         a.metadata == b.metadata;
}

bool same_tenant(const Tenant& a, const Tenant& b) {
  return a.token == b.token && a.share == b.share && a.may_read == b.may_read && a.may_write == b.may_write &&
         a.may_admin == b.may_admin && a.partition == b.partition;
}

}  // namespace

OnlinePartitions::OnlinePartitions(PoolConfig config, const Layout& layout, const PoolOptions& options, uint64_t epoch,
                                   ConfigLoader loader)
    : config_(std::move(config)), layout_(layout), options_(options), epoch_(epoch), loader_(std::move(loader)) {}

Result<std::unique_ptr<OnlinePartitions>> OnlinePartitions::open(const PoolConfig& config, const Layout& layout,
                                                                 const PoolOptions& options, uint64_t epoch,
                                                                 ConfigLoader loader) {
  std::unique_ptr<OnlinePartitions> o(new OnlinePartitions(config, layout, options, epoch, std::move(loader)));
  const std::vector<PartitionSpec> specs = served_partitions(config);
  for (uint32_t i = 0; i < specs.size(); ++i) {
    auto p = Partition::open(config, specs[i], i, layout, options, epoch);
    if (!p) return p.status();
    o->partitions_.push_back(std::move(*p));
  }
  return o;
}

std::vector<DispatchPartition> OnlinePartitions::dispatch_entries() const {
  std::vector<DispatchPartition> out;
  for (const auto& p : partitions_) out.push_back({p->name(), &p->service()});
  return out;
}

std::vector<Server::PartitionFds> OnlinePartitions::fds() const {
  std::vector<Server::PartitionFds> out;
  for (const auto& p : partitions_) out.push_back({p->writer_fd(), p->read_only_fd()});
  return out;
}

void OnlinePartitions::attach(Dispatcher& dispatcher, Server& server, std::function<void()> on_change,
                              std::function<void(std::function<void()>)> post) {
  dispatcher_ = &dispatcher;
  server_ = &server;
  on_change_ = std::move(on_change);
  post_ = std::move(post);
  dispatcher.set_partition_control(this);
}

std::vector<Partition*> OnlinePartitions::live() const {
  std::vector<Partition*> out;
  for (const auto& p : partitions_)
    if (p) out.push_back(p.get());
  return out;
}

int OnlinePartitions::index_of(const std::string& name) const {
  const std::vector<PartitionSpec> specs = served_partitions(config_);
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].name == name) return int(i);
  return -1;
}

Result<PartitionControl::Reloaded> OnlinePartitions::reload() {
  auto fresh = loader_();
  if (!fresh) return Status(fresh.status().code(), "reload: the configuration: " + fresh.status().message());
  Reloaded out;
  // A partition that fails to open ends the reload there, but what was added before it (and the
  // tenants bound to partitions served) is served and announced all the same.
  const Status opened = add_partitions(*fresh, out);
  add_tenants(*fresh, out);
  spdlog::info("reload: {} partition(s) and {} tenant(s) added; {} change(s) left for the next start",
               out.partitions_added.size(), out.tenants_added.size(), out.not_applied.size());
  for (const std::string& line : out.not_applied) spdlog::warn("reload: {}", line);
  if (!out.partitions_added.empty() || !out.tenants_added.empty()) on_change_();
  if (!opened.is_ok())
    return Status(opened.code(), fmt::format("{} (served now: partitions [{}], tenants [{}])", opened.message(),
                                             fmt::join(out.partitions_added, ", "), fmt::join(out.tenants_added, ", ")));
  return out;
}

Status OnlinePartitions::add_partitions(const PoolConfig& fresh, Reloaded& out) {
  const std::vector<PartitionSpec> wanted = served_partitions(fresh);
  for (const PartitionSpec& spec : wanted) {
    const int i = index_of(spec.name);
    if (i >= 0) {
      if (!partitions_[i]) out.not_applied.push_back(fmt::format("partition '{}' was removed; it is served again "
                                                                 "after a restart", spec.name));
      else if (!same_region(served_partitions(config_)[i], spec))
        out.not_applied.push_back(fmt::format("partition '{}': its region changed; the one served stays until a "
                                              "restart", spec.name));
      continue;
    }
    // A new partition: opened (or created) as at start, never formatted online; its tenants'
    // shares are given as they are added below.
    PoolConfig opening = config_;
    opening.format = false;
    opening.tenants.clear();
    const auto index = uint32_t(partitions_.size());
    auto p = Partition::open(opening, spec, index, layout_, options_, epoch_);
    if (!p) return Status(p.status().code(), "reload: " + p.status().message());
    // One numbering for the three: every partition is appended to each, here or at start.
    dispatcher_->add_partition({spec.name, &(*p)->service()});
    server_->add_partition_fds({(*p)->writer_fd(), (*p)->read_only_fd()});
    spdlog::info("reload: partition '{}' ({}) served, index {}", spec.name, (*p)->describe(), index);
    partitions_.push_back(std::move(*p));
    config_.partitions.push_back(spec);
    out.partitions_added.push_back(spec.name);
  }
  for (const PartitionSpec& spec : served_partitions(config_)) {
    const bool kept = std::any_of(wanted.begin(), wanted.end(), [&](const PartitionSpec& w) { return w.name == spec.name; });
    if (!kept && partitions_[index_of(spec.name)])
      out.not_applied.push_back(fmt::format("partition '{}' is not in the configuration any more; it is served until "
                                            "it is removed (cxlkv-admin remove-partition) or the daemon restarts",
                                            spec.name));
  }
  return Status::ok();
}

void OnlinePartitions::add_tenants(const PoolConfig& fresh, Reloaded& out) {
  const std::vector<Tenant>& served = dispatcher_->tenants();
  if (served.empty() != fresh.tenants.empty()) {
    out.not_applied.push_back(served.empty() ? "tenants: auth is open in this run (no tenants); configured tenants "
                                               "apply at the next start"
                                             : "tenants: none configured any more; auth opens only at a restart");
    return;
  }
  for (const Tenant& t : fresh.tenants) {
    auto known = std::find_if(served.begin(), served.end(), [&](const Tenant& s) { return s.name == t.name; });
    if (known != served.end()) {
      if (!same_tenant(*known, t))
        out.not_applied.push_back(fmt::format("tenant '{}': its token, roles, share or partition changed; the "
                                              "served ones stay until a restart", t.name));
      continue;
    }
    const int p = index_of(t.partition.empty() ? config_.region_name : t.partition);
    if (p < 0 || !partitions_[p]) {
      out.not_applied.push_back(fmt::format("tenant '{}': its partition '{}' is not served", t.name, t.partition));
      continue;
    }
    const uint32_t index = dispatcher_->add_tenant(t, uint32_t(p));
    partitions_[p]->apply_share(index, t);
    config_.tenants.push_back(t);
    spdlog::info("reload: tenant '{}' served, bound to partition '{}'", t.name, partitions_[p]->name());
    out.tenants_added.push_back(t.name);
  }
  for (const Tenant& s : served)
    if (std::none_of(fresh.tenants.begin(), fresh.tenants.end(), [&](const Tenant& t) { return t.name == s.name; }))
      out.not_applied.push_back(fmt::format("tenant '{}' is not in the configuration any more; it is served until a "
                                            "restart", s.name));
}

Result<PartitionControl::Removed> OnlinePartitions::remove_partition(const std::string& name, const std::string& into) {
  // Asked again after it ended: how it ended (a failure is said once; the next call tries again).
  if (ended_ && ended_->name == name && ended_->into == into) {
    if (!ended_->result.is_ok()) {
      const Status failed = ended_->result.status();
      ended_.reset();
      return failed;
    }
    return ended_->result;
  }
  const int from = index_of(name), to = index_of(into);
  auto served_names = [&] {
    std::vector<std::string> names;
    for (const Partition* p : live()) names.push_back(p->name());
    return fmt::format("{}", fmt::join(names, ", "));
  };
  if (from < 0 || !partitions_[from])
    return Status(Code::kNotFound, fmt::format("remove-partition: no partition '{}' is served (served: {})", name,
                                               served_names()));
  if (to < 0 || !partitions_[to])
    return Status(Code::kNotFound, fmt::format("remove-partition: no partition '{}' to move the pages into (served: "
                                               "{})", into, served_names()));
  if (from == to)
    return Status(Code::kInvalidArgument, fmt::format("remove-partition: '{}' cannot take its own pages", name));
  Removed progress;
  if (removal_) {
    if (removal_->from != uint32_t(from) || removal_->to != uint32_t(to))
      return Status(Code::kBusy, fmt::format("remove-partition: '{}' is being removed into '{}' now; one removal at a "
                                             "time", partitions_[removal_->from]->name(),
                                             partitions_[removal_->to]->name()));
    if (removal_->copy) {
      const PageCopyReport& r = removal_->copy->report();
      progress.pages_copied = r.pages_copied, progress.pages_already_there = r.pages_already_there;
      progress.bytes_copied = r.bytes_copied;
      return progress;  // copying: ask again
    }
  }
  ended_.reset();
  Partition& source = *partitions_[from];
  Partition& target = *partitions_[to];
  if (!removal_) {
    removal_ = Removal{uint32_t(from), uint32_t(to), nullptr, std::chrono::steady_clock::now()};
    dispatcher_->set_partition_draining(uint32_t(from), true);
    on_change_();
    spdlog::info("remove-partition: partition '{}' drains: reserves refused, leases honoured", name);
  }
  // Pages under a write lease may still be committed: wait for them (the caller asks again).
  if (const uint64_t open = source.service().stats().write_leases; open > 0) {
    progress.write_leases = open;
    return progress;
  }
  // Each moved tenant with a share must fit its share of the target with what it holds there.
  const std::vector<Tenant>& tenants = dispatcher_->tenants();
  for (uint32_t t = 0; t < tenants.size(); ++t) {
    if (dispatcher_->tenant_partitions()[t] != uint32_t(from) || tenants[t].share <= 0) continue;
    const uint64_t cap = target.share_slabs(tenants[t]);
    const uint64_t need = source.service().tenant_slabs(t) + target.service().tenant_slabs(t);
    if (need > cap)
      return end_removal(Status(Code::kExhausted, fmt::format("tenant '{}' holds {} slabs, its share of '{}' is {}: "
                                                              "nothing was copied", tenants[t].name, need, into, cap)));
  }
  auto copy = PageCopy::start(source.service(), target.service());
  if (!copy) return end_removal(Status(copy.status().code(), copy.status().message()));
  for (uint32_t t = 0; t < tenants.size(); ++t)
    if (dispatcher_->tenant_partitions()[t] == uint32_t(from)) target.apply_share(t, tenants[t]);
  removal_->copy = std::move(*copy);
  removal_->started = std::chrono::steady_clock::now();
  spdlog::info("remove-partition: copying the pages of '{}' into '{}', {} KiB a step", name, into, kCopyStepBytes >> 10);
  post_([this] { copy_step(); });
  return progress;
}

Status OnlinePartitions::end_removal(const Status& why) {
  const uint32_t from = removal_->from;
  const std::string name = partitions_[from]->name(), into = partitions_[removal_->to]->name();
  removal_.reset();  // the copy's sessions of the target end here
  dispatcher_->set_partition_draining(from, false);
  on_change_();
  Status said(why.code(), fmt::format("remove-partition: moving the pages of '{}' into '{}': {}; '{}' is served as "
                                      "before (pages copied so far stay in '{}' too)", name, into, why.message(),
                                      name, into));
  spdlog::error("{}", said.message());
  return said;
}

void OnlinePartitions::copy_step() {
  if (!removal_ || !removal_->copy || stopping_) return;
  if (Status st = removal_->copy->step(kCopyStepBytes, Clock::now()); !st) {
    const std::string name = partitions_[removal_->from]->name(), into = partitions_[removal_->to]->name();
    ended_ = Ended{name, into, end_removal(st)};
    return;
  }
  if (!removal_->copy->done()) return post_([this] { copy_step(); });
  finish_removal();
}

void OnlinePartitions::finish_removal() {
  const uint32_t from = removal_->from, to = removal_->to;
  Partition& source = *partitions_[from];
  Partition& target = *partitions_[to];
  const PageCopyReport r = removal_->copy->report();
  Removed out;
  out.removed = true;
  out.pages_copied = r.pages_copied, out.pages_already_there = r.pages_already_there, out.bytes_copied = r.bytes_copied;
  out.copy_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - removal_->started).count();
  removal_.reset();  // its sessions of the target end here
  for (uint32_t t : dispatcher_->move_tenants(from, to)) out.tenants_moved.push_back(dispatcher_->tenants()[t].name);
  out.sessions_closed = server_->close_partition_sessions(from);
  source.retire(epoch_);
  dispatcher_->retire_partition(from);
  spdlog::info("remove-partition: '{}' removed: {} pages ({} bytes) copied into '{}' in {:.3f} s, {} there already, {} "
               "gone before their turn; tenants [{}] bound to '{}'; {} sessions closed; its region {} left as it is",
               source.name(), out.pages_copied, out.bytes_copied, target.name(), out.copy_seconds,
               out.pages_already_there, r.pages_gone, fmt::join(out.tenants_moved, ", "), target.name(),
               out.sessions_closed, source.describe());
  ended_ = Ended{source.name(), target.name(), out};
  partitions_[from].reset();
  on_change_();
}

}  // namespace cxlkv::pool
