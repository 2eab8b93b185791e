#include "cluster_router.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "node_record.h"
#include "session.h"

namespace cxlkv::detail {

namespace {

constexpr auto kWatchRetry = std::chrono::seconds(1);  // after a watch ends with an error

// The nodes' weights for placement, in the same order. kPlace (where new chunks go): a draining
// node weighs 0. kFind (where chunks written before a drain began are): it keeps its capacity.
enum class Weights { kPlace, kFind };
std::vector<cluster::PlacementNode> weights_of(const std::vector<ClusterRouter::Node>& nodes, Weights use);

// The Unix socket of `endpoint` exists on this host (the node runs here).
bool local_socket(const std::string& endpoint) {
  struct stat st{};
  return endpoint.starts_with("unix:") && ::stat(endpoint.c_str() + 5, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

Result<std::unique_ptr<ClusterRouter>> ClusterRouter::open(const ClientOptions& options) {
  auto url = cluster::parse_cluster_url(options.endpoint);
  if (!url) return url.status();
  std::unique_ptr<ClusterRouter> r(new ClusterRouter());
  r->options_ = options;
  r->url_ = *url;
  cluster::EtcdClient etcd(url->host, url->port, std::chrono::milliseconds(std::max(options.io_timeout_ms, 100)));
  auto settings = cluster::read_settings(etcd, *url);
  if (!settings) return settings.status();
  r->chunk_pages_ = settings->chunk_pages;
  auto records = cluster::list_nodes(etcd, *url);
  if (!records) return records.status();
  if (records->empty())
    return Status(Code::kUnavailable, fmt::format("cluster {}: no memory node is registered", url->to_string()));
  std::string why;
  for (const cluster::NodeRecord& rec : *records) {
    Node n{rec.node_id, rec.epoch, rec.capacity_bytes(), rec.endpoints, nullptr, "", rec.draining};
    auto session = r->connect_node(rec);
    if (session) n.session = std::move(*session);
    else n.why_not = session.status().message(), why += fmt::format("; {}: {}", rec.node_id, n.why_not);
    if (!session && session.status().code() == Code::kMismatch) n.weight = 0;  // as refresh(): never placed on
    if (n.session && !r->primary_) r->primary_ = n.session;
    r->nodes_.push_back(std::move(n));
  }
  if (!r->primary_)
    return Status(Code::kUnavailable, fmt::format("cluster {}: no registered node answered{}", url->to_string(), why));
  // Nodes that failed before the primary was known were not checked against its layout: they
  // are connected (and checked) by the refresher.
  r->thread_ = std::thread([raw = r.get()] { raw->refresher(); });
  r->watch_thread_ = std::thread([raw = r.get()] { raw->watcher(); });
  if (options.cluster_directory_max_age_ms > 0)
    r->directory_thread_ = std::thread([raw = r.get()] { raw->directory_reader(); });
  return r;
}

ClusterRouter::~ClusterRouter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (watch_) watch_->stop();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (directory_thread_.joinable()) directory_thread_.join();
}

Result<std::shared_ptr<Session>> ClusterRouter::connect_node(const cluster::NodeRecord& record) const {
  if (record.endpoints.empty()) return Status(Code::kUnavailable, "it advertises no endpoint");
  std::string endpoint;
  for (const std::string& e : record.endpoints)
    if (local_socket(e)) endpoint = e;
  for (const char* scheme : {"tls:", "tcp:"})  // off this host: TLS where the node offers it
    if (endpoint.empty())
      for (const std::string& e : record.endpoints)
        if (e.starts_with(scheme)) endpoint = e;
  if (endpoint.empty()) endpoint = record.endpoints.front();
  // A client given a CA file expects TLS off this host: a record (from etcd, unauthenticated) that
  // offers only plain TCP must not receive the tenant's token in clear.
  if (!options_.tls_ca_file.empty() && endpoint.starts_with("tcp:"))
    return Status(Code::kPermissionDenied,
                  fmt::format("it offers only plain TCP ({}) and this client requires TLS (tls_ca_file is set)", endpoint));
  ClientOptions o = options_;
  o.endpoint = endpoint;
  if (!endpoint.starts_with("unix:")) o.want_fd = false;
  auto session = Session::open(o);
  if (!session) return Status(session.status().code(), fmt::format("{}: {}", endpoint, session.status().message()));
  if (primary_) {
    const PoolView& a = primary_->view();
    const PoolView& b = (*session)->view();
    if (!(primary_->layout() == (*session)->layout() && same_page_shape(a, b)))
      return Status(Code::kMismatch, fmt::format("{} serves {} with E = {}; this client's first node serves {} with E = {}",
                                                 endpoint, (*session)->layout().describe(), b.slab_pages,
                                                 primary_->layout().describe(), a.slab_pages));
  }
  return std::move(*session);
}

Status ClusterRouter::refresh() {
  cluster::EtcdClient etcd(url_.host, url_.port, std::chrono::milliseconds(std::max(options_.io_timeout_ms, 100)));
  auto records = cluster::list_nodes(etcd, url_);
  if (!records) return records.status();  // etcd away: the last membership stays in use
  std::vector<Node> current = snapshot();
  std::vector<Node> next;
  for (const cluster::NodeRecord& rec : *records) {
    auto known = std::find_if(current.begin(), current.end(), [&](const Node& n) { return n.id == rec.node_id; });
    Node n{rec.node_id, rec.epoch, rec.capacity_bytes(), rec.endpoints, nullptr, "", rec.draining};
    if (known != current.end() && known->epoch == rec.epoch && known->session && known->session->usable()) {
      n.session = known->session;  // the same run of the same node: keep the connection
    } else {
      // New, restarted (a lease of the old epoch is never read: its session is dropped here), not
      // answering before, or its session closed by the node (the partition serving it removed: a
      // new session is handed the one its tenant is bound to now): connect now.
      auto session = connect_node(rec);
      if (session) n.session = std::move(*session);
      else n.why_not = session.status().message();
      if (!session && session.status().code() == Code::kMismatch) n.weight = 0;
    }
    next.push_back(std::move(n));
  }
  std::lock_guard lock(mu_);
  nodes_ = std::move(next);
  return Status::ok();
}

void ClusterRouter::refresher() {
  const auto period = std::chrono::milliseconds(std::max(options_.cluster_poll_ms, 100));
  auto next_poll = std::chrono::steady_clock::now() + period;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_until(lock, next_poll, [&] { return stopping_ || changed_; });
    if (stopping_) break;
    changed_ = false;
    lock.unlock();
    (void)refresh();
    next_poll = std::chrono::steady_clock::now() + period;
    lock.lock();
  }
}

void ClusterRouter::directory_reader() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait(lock, [&] { return stopping_ || directory_due_; });
    if (stopping_) break;
    directory_due_ = false;
    lock.unlock();
    refresh_directory();
    lock.lock();
  }
}

std::shared_ptr<const std::map<std::string, cluster::PrefixSummary>> ClusterRouter::directory_for_lookup() {
  if (options_.cluster_directory_max_age_ms <= 0) return nullptr;  // the operator turned it off
  std::lock_guard lock(mu_);
  const auto max_age = std::chrono::milliseconds(options_.cluster_directory_max_age_ms);
  const auto now = std::chrono::steady_clock::now();
  if (!directory_due_ && (!directory_read_at_ || now - *directory_read_at_ >= max_age)) {
    directory_due_ = true;
    directory_read_at_ = now;  // asked for: the lookups until it is read ask for no other
    wake_.notify_all();
  }
  return directory_;
}

void ClusterRouter::refresh_directory() {
  cluster::EtcdClient etcd(url_.host, url_.port, std::chrono::milliseconds(std::max(options_.io_timeout_ms, 100)));
  auto summaries = cluster::read_directory(etcd, url_, namespace_id(options_.tenant, options_.model));
  std::lock_guard lock(mu_);
  directory_read_at_ = std::chrono::steady_clock::now();  // tried: etcd away waits as long as a read
  if (summaries)
    directory_ = std::make_shared<const std::map<std::string, cluster::PrefixSummary>>(std::move(*summaries));
}

void ClusterRouter::watcher() {
  const std::string prefix = cluster::nodes_prefix(url_);
  const auto timeout = std::chrono::milliseconds(std::max(options_.io_timeout_ms, 100));
  auto heard = [this] {
    {
      std::lock_guard lock(mu_);
      changed_ = true;
    }
    wake_.notify_all();
  };
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cluster::EtcdWatch watch(url_.host, url_.port, timeout);
    watch_ = &watch;
    lock.unlock();
    const Status ended = watch.run(prefix, heard);
    lock.lock();
    watch_ = nullptr;
    if (stopping_) break;
    // etcd away or the stream cut: the poll carries on meanwhile; watch again in a second.
    (void)ended;
    wake_.wait_for(lock, kWatchRetry, [&] { return stopping_; });
  }
}

std::vector<ClusterRouter::Node> ClusterRouter::snapshot() const {
  std::lock_guard lock(mu_);
  return nodes_;
}

void ClusterRouter::mark_draining(const std::string& node_id) {
  {
    std::lock_guard lock(mu_);
    for (Node& n : nodes_)
      if (n.id == node_id) n.draining = true;
    changed_ = true;  // the refresher reads the records again: they say so, or the node resumed
  }
  wake_.notify_all();
}

void ClusterRouter::mark_failed(const std::string& node_id, const std::shared_ptr<Session>& session, const Status& why) {
  std::lock_guard lock(mu_);
  for (Node& n : nodes_)
    if (n.id == node_id && n.session == session) n.session.reset(), n.why_not = why.message();
}

std::vector<cluster::PlacementNode> ClusterRouter::placement_nodes() const {
  return weights_of(snapshot(), Weights::kPlace);
}

namespace {

std::vector<cluster::PlacementNode> weights_of(const std::vector<ClusterRouter::Node>& nodes, Weights use) {
  std::vector<cluster::PlacementNode> out;
  out.reserve(nodes.size());
  for (const ClusterRouter::Node& n : nodes) out.push_back({n.id, use == Weights::kPlace && n.draining ? 0 : n.weight});
  return out;
}

// Keys are SHA-256 digests: their first 8 bytes are already a uniform hash.
struct KeyHash {
  size_t operator()(const PageKey& k) const {
    uint64_t h;
    std::memcpy(&h, k.bytes.data(), sizeof h);
    return size_t(h);
  }
};
bool key_order(const PageKey& a, const PageKey& b) { return a.bytes < b.bytes; }

bool any_draining(const std::vector<ClusterRouter::Node>& nodes) {
  return std::any_of(nodes.begin(), nodes.end(), [](const ClusterRouter::Node& n) { return n.draining; });
}

// Gives every chunk that ends past page `found` to a node whose directory summary holds its first
// key, when the node it is placed on has none there; among several, the one rendezvous hashing
// ranks highest (where it was most likely written), so a false "maybe" elsewhere seldom wins. A
// chunk found in part is cut at `found` when a node's summary holds that page (a run that began
// away from its parent, whose node drained): the rest is asked of that node (once a lookup: a run
// cut twice is found up to the second cut); else the whole chunk may move, as any other. Stops at
// the first chunk no summary holds: the prefix ends there whatever comes after. Whether any chunk
// moved.
bool relocate_by_directory(std::vector<cluster::ChunkPlacement>& chunks, std::span<const PageKey> keys, size_t found,
                           const std::vector<ClusterRouter::Node>& nodes,
                           const std::map<std::string, cluster::PrefixSummary>& directory) {
  std::vector<const cluster::PrefixSummary*> summary(nodes.size(), nullptr);
  for (size_t n = 0; n < nodes.size(); ++n)
    if (auto it = directory.find(nodes[n].id); it != directory.end()) summary[n] = &it->second;
  auto holds = [&](size_t n, const PageKey& key) { return summary[n] && summary[n]->may_contain(key); };
  const std::vector<cluster::PlacementNode> full = weights_of(nodes, Weights::kFind);
  // The answering node that ranks highest among those whose summary may hold `key`, but `not_on`.
  auto best_holder = [&](const PageKey& key, int not_on) {
    int best = -1;
    double best_score = -1;
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (int(n) == not_on || !nodes[n].session || !holds(n, key)) continue;
      const double score = cluster::rendezvous_score(key, full[n]);
      if (score > best_score) best = int(n), best_score = score;
    }
    return best;
  };
  bool moved = false;
  for (size_t i = 0; i < chunks.size(); ++i) {
    cluster::ChunkPlacement& c = chunks[i];
    if (c.first_page + c.pages <= found) continue;
    if (c.first_page < found) {  // found in part: the rest may be a run written elsewhere
      if (const int rest = best_holder(keys[found], c.node); rest >= 0) {
        const cluster::ChunkPlacement tail{uint32_t(found), c.first_page + c.pages - uint32_t(found), rest};
        c.pages = uint32_t(found) - c.first_page;
        chunks.insert(chunks.begin() + std::ptrdiff_t(i) + 1, tail);  // `c` is not used after this
        moved = true;
        continue;  // the tail is placed where its first page is held
      }
    }
    const PageKey& first = keys[c.first_page];
    if (c.node >= 0 && holds(size_t(c.node), first)) continue;
    const int best = best_holder(first, -1);
    if (best < 0) break;
    c.node = best, moved = true;
  }
  return moved;
}

}  // namespace

int ClusterRouter::node_holding(const PageKey& key, const std::vector<Node>& nodes) {
  const std::span<const PageKey> one(&key, 1);
  std::vector<bool> asked(nodes.size(), false);
  std::vector<Result<LeaseReply>> replies(nodes.size(), Result<LeaseReply>(Status(Code::kNotFound, "not asked")));
  for (size_t n = 0; n < nodes.size(); ++n)
    if (nodes[n].session) asked[n] = nodes[n].session->begin_lookup(one).is_ok();
  for (size_t n = 0; n < nodes.size(); ++n)
    if (asked[n]) replies[n] = nodes[n].session->finish_lookup(one);
  int found = -1;
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (!replies[n] || replies[n]->lease == 0) continue;
    if (found < 0 && !replies[n]->pages.empty()) found = int(n);
    (void)nodes[n].session->release(replies[n]->lease);
  }
  return found;
}

Result<WriteLease> ClusterRouter::reserve(const PageKey& parent, std::span<const PageKey> keys) {
  auto lease = reserve_placed(parent, keys);
  // busy: a node began to drain before this client heard (reserve_placed marked it): place again.
  if (!lease && lease.status().code() == Code::kBusy) return reserve_placed(parent, keys);
  return lease;
}

Result<WriteLease> ClusterRouter::reserve_placed(const PageKey& parent, std::span<const PageKey> keys) {
  const std::vector<Node> nodes = snapshot();
  auto chunks = cluster::place_prefix(keys, chunk_pages_, weights_of(nodes, Weights::kPlace));
  // An extension whose first page does not start a chunk continues its parent's chunk: it goes
  // where the parent is, which is where a lookup from the root looks for it. (A parent that is
  // nowhere, or not given, leaves the run where a prefix's first chunk would go.)
  if (!chunks.empty() && parent != PageKey{} && !cluster::starts_chunk(keys[0], chunk_pages_))
    if (const int at = node_holding(parent, nodes); at >= 0 && nodes[size_t(at)].weight > 0 && !nodes[size_t(at)].draining)
      chunks[0].node = at;
  const uint8_t* base = primary_->view().base;
  std::vector<Placement> pages;
  pages.reserve(keys.size());
  std::vector<WritePart> parts;
  auto abort_all = [&] {
    for (WritePart& p : parts)
      if (p.id != 0) (void)p.session->abort(p.id);
  };
  for (const cluster::ChunkPlacement& c : chunks) {
    if (c.node < 0) {
      abort_all();
      return Status(Code::kUnavailable, fmt::format("reserve: cluster {} has no node with capacity", url_.to_string()));
    }
    const Node& n = nodes[size_t(c.node)];
    if (!n.session) {
      abort_all();
      return Status(Code::kUnavailable, fmt::format("reserve: pages {}..{} belong on node {}, which does not answer ({})",
                                                    c.first_page, c.first_page + c.pages - 1, n.id, n.why_not));
    }
    const PageKey& chunk_parent = c.first_page == 0 ? parent : keys[c.first_page - 1];
    auto reply = n.session->reserve(chunk_parent, keys.subspan(c.first_page, c.pages));
    if (!reply) {
      abort_all();
      if (reply.status().code() == Code::kIoError || reply.status().code() == Code::kUnavailable)
        mark_failed(n.id, n.session, reply.status());
      if (reply.status().code() == Code::kBusy) mark_draining(n.id);
      return Status(reply.status().code(), fmt::format("reserve on node {}: {}", n.id, reply.status().message()));
    }
    const auto* epoch = n.session->view().serving_epoch;
    WritePart part{reply->lease, n.session, {}, epoch, epoch ? epoch->load(std::memory_order_acquire) : 0};
    for (const Placement& p : reply->pages) {
      part.pages.push_back(uint32_t(pages.size()));
      pages.push_back(rebase(p, n.session->view().base, base));
    }
    parts.push_back(std::move(part));
  }
  if (parts.size() == 1 && parts.front().session == primary_) {
    WritePart& only = parts.front();
    return LeaseFactory::write_lease(primary_->view(), std::move(pages), only.id, std::move(only.session));
  }
  return LeaseFactory::write_lease_over_nodes(primary_->view(), std::move(pages), std::move(parts));
}

Result<ReadLease> ClusterRouter::lookup(std::span<const PageKey> keys) {
  const std::vector<Node> nodes = snapshot();
  std::vector<cluster::ChunkPlacement> chunks = cluster::place_prefix(keys, chunk_pages_, weights_of(nodes, Weights::kPlace));
  auto found = lookup_chunks(keys, nodes, chunks);
  if (!found || found->pages() == keys.size()) return found;
  // While a node drains, chunks written before the drain began are still where the weights that
  // count it placed them: a prefix that falls short is asked for there too, and the longer wins.
  if (any_draining(nodes)) {
    auto find_chunks = cluster::place_prefix(keys, chunk_pages_, weights_of(nodes, Weights::kFind));
    auto before = lookup_chunks(keys, nodes, find_chunks);
    if (before && before->pages() > found->pages()) found = std::move(before), chunks = std::move(find_chunks);
    if (found->pages() == keys.size()) return found;
  }
  // Chunks written under another membership (a node joined since, or one's capacity changed) are
  // where they were written, which the directory tells: the chunks of the longer answer so far,
  // from the first one short on, are asked for there, and the longer prefix wins. A summary that
  // is stale or wrong (a Bloom filter's false "maybe") costs this lookup a miss, never a wrong byte.
  auto directory = directory_for_lookup();
  if (!directory || !relocate_by_directory(chunks, keys, found->pages(), nodes, *directory)) return found;
  auto there = lookup_chunks(keys, nodes, chunks);
  if (there && there->pages() > found->pages()) return there;
  return found;
}

Result<ReadLease> ClusterRouter::lookup_chunks(std::span<const PageKey> keys, const std::vector<Node>& nodes,
                                               const std::vector<cluster::ChunkPlacement>& chunks) {
  // Each node's keys: its chunks in prefix order, asked in one lookup, all nodes at once.
  std::vector<std::vector<PageKey>> node_keys(nodes.size());
  std::vector<uint32_t> offset_in_node(chunks.size(), 0);
  size_t placed = 0;
  for (size_t i = 0; i < chunks.size() && chunks[i].node >= 0; ++i, ++placed) {
    auto& mine = node_keys[size_t(chunks[i].node)];
    offset_in_node[i] = uint32_t(mine.size());
    mine.insert(mine.end(), keys.begin() + chunks[i].first_page, keys.begin() + chunks[i].first_page + chunks[i].pages);
  }
  // Every node's request goes out before any reply is read, so the nodes work at once; one thread,
  // no handoff (on a loaded host a thread per node waited a scheduler slice: milliseconds).
  // Nothing between the two loops allocates: a begun lookup holds its session until finished.
  std::vector<Status> sent(nodes.size(), Status(Code::kNotFound, "not asked"));
  std::vector<std::optional<LeaseReply>> replies(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n)
    if (!node_keys[n].empty() && nodes[n].session) sent[n] = nodes[n].session->begin_lookup(node_keys[n]);
  Status refused;  // a node that answered with an error (not a dead one): the lookup fails with it
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (sent[n].code() == Code::kNotFound) continue;
    auto reply = sent[n] ? nodes[n].session->finish_lookup(node_keys[n]) : Result<LeaseReply>(sent[n]);
    if (reply) replies[n] = std::move(*reply);
    else if (reply.status().code() == Code::kIoError || reply.status().code() == Code::kUnavailable ||
             reply.status().code() == Code::kProtocol)
      mark_failed(nodes[n].id, nodes[n].session, reply.status());  // a miss now, connected again later
    else if (refused.is_ok())
      refused = Status(reply.status().code(), fmt::format("lookup on node {}: {}", nodes[n].id, reply.status().message()));
  }
  if (!refused) {
    for (size_t n = 0; n < nodes.size(); ++n)
      if (replies[n] && replies[n]->lease != 0) (void)nodes[n].session->release(replies[n]->lease);
    return refused;
  }
  // The prefix: whole chunks up to the first that is not wholly cached, plus that one's hits.
  const uint8_t* base = primary_->view().base;
  std::vector<Placement> pages;
  std::vector<LeasePart> parts(nodes.size());
  for (size_t i = 0; i < placed; ++i) {
    const size_t n = size_t(chunks[i].node);
    const uint32_t hits = replies[n] ? uint32_t(replies[n]->pages.size()) : 0;
    const uint32_t have = hits > offset_in_node[i] ? std::min(hits - offset_in_node[i], chunks[i].pages) : 0;
    for (uint32_t j = 0; j < have; ++j) {
      parts[n].pages.push_back(uint32_t(pages.size()));
      pages.push_back(rebase(replies[n]->pages[offset_in_node[i] + j], nodes[n].session->view().base, base));
    }
    if (have < chunks[i].pages) break;
  }
  // Nodes whose pages made it into the prefix become parts; the others' leases end now (they
  // pinned pages past the first miss).
  std::vector<LeasePart> used;
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (!replies[n] || replies[n]->lease == 0) continue;
    if (parts[n].pages.empty()) {
      (void)nodes[n].session->release(replies[n]->lease);
      continue;
    }
    parts[n].view = nodes[n].session->view();
    parts[n].id = replies[n]->lease;
    parts[n].session = nodes[n].session;
    used.push_back(std::move(parts[n]));
  }
  if (used.empty()) return ReadLease();
  if (used.size() == 1) {  // one node: an ordinary lease over its own mapping
    LeasePart& only = used.front();
    for (Placement& p : pages) p = rebase(p, base, only.view.base);
    return LeaseFactory::read_lease(only.view, std::move(pages), only.id, std::move(only.session));
  }
  return LeaseFactory::read_lease_over_nodes(primary_->view(), std::move(pages), std::move(used));
}

Result<uint32_t> ClusterRouter::remove(std::span<const PageKey> keys) {
  // Every node is asked for every key: a run that continues a chunk may sit beside its parent on a
  // node the keys alone do not name, and a removal must not leave a copy behind.
  uint32_t removed = 0;
  Status first_error;
  for (const Node& n : snapshot()) {
    Status why;
    if (!n.session) {
      why = Status(Code::kUnavailable, fmt::format("remove: node {} does not answer ({})", n.id, n.why_not));
    } else if (auto r = n.session->remove(keys)) {
      removed += *r;
      continue;
    } else {
      if (r.status().code() == Code::kIoError || r.status().code() == Code::kUnavailable)
        mark_failed(n.id, n.session, r.status());
      why = Status(r.status().code(), fmt::format("remove on node {}: {}", n.id, r.status().message()));
    }
    if (first_error.is_ok()) first_error = why;
  }
  if (!first_error.is_ok()) return first_error;
  return removed;
}

Result<PoolStats> ClusterRouter::stats() {
  PoolStats total;
  for (const Node& n : snapshot()) {
    if (!n.session) continue;
    auto s = n.session->stats();
    if (!s) continue;  // a node that does not answer counts for nothing
    total.pages_committed += s->pages_committed, total.pages_reserved += s->pages_reserved;
    total.slabs_total += s->slabs_total, total.slabs_free += s->slabs_free;
    total.read_leases += s->read_leases, total.write_leases += s->write_leases;
    total.lookup_hits += s->lookup_hits, total.lookup_misses += s->lookup_misses, total.evictions += s->evictions;
  }
  return total;
}

Result<ClusterRouter::MovePlan> ClusterRouter::plan_move() {
  MovePlan plan;
  plan.nodes = snapshot();
  const auto weights = weights_of(plan.nodes, Weights::kPlace);
  for (size_t from = 0; from < plan.nodes.size(); ++from) {
    const Node& node = plan.nodes[from];
    if (!node.draining) continue;
    if (!node.session)
      return Status(Code::kUnavailable, fmt::format("move: draining node {} does not answer ({})", node.id, node.why_not));
    ++plan.draining;
    // Every committed page of this namespace there: page -> its parent.
    std::unordered_map<PageKey, PageKey, KeyHash> parent_of;
    for (uint64_t slot = 0;;) {
      auto listed = node.session->list_pages(slot, 0);
      if (!listed) return Status(listed.status().code(), fmt::format("move: listing node {}: {}", node.id, listed.status().message()));
      for (const auto& [key, parent] : listed->pages) parent_of.emplace(key, parent);
      if (listed->done) break;
      if (listed->next_slot <= slot)
        return Status(Code::kProtocol, fmt::format("move: node {} listed slot {} after slot {}", node.id, listed->next_slot, slot));
      slot = listed->next_slot;
    }
    plan.pages += parent_of.size();
    // A writer names any parent it likes (the daemon does not check that it differs from the
    // key), so every walk up the tree below stops after as many steps as there are pages.
    auto parent_here = [&](const PageKey& k) -> const PageKey* {
      auto it = parent_of.find(k);
      if (it == parent_of.end() || it->second == PageKey{} || it->second == k || !parent_of.count(it->second))
        return nullptr;
      return &it->second;
    };
    // A page's chunk starts at its nearest ancestor (itself included) that starts a chunk or a
    // prefix; a run that continues a chunk was put beside its parent, so the walk stays here.
    auto head_of = [&](PageKey k) {
      for (size_t steps = 0; steps < parent_of.size() && !cluster::starts_chunk(k, chunk_pages_); ++steps) {
        const PageKey* up = parent_here(k);
        if (!up) break;
        k = *up;
      }
      return k;
    };
    // Depth in the tree of pages listed here, so chunks move parents first (a child committed
    // before its parent would find no parent to link to on the target).
    std::unordered_map<PageKey, uint32_t, KeyHash> depth;
    auto depth_of = [&](const PageKey& key) {
      std::vector<PageKey> path;
      uint32_t next = 0;
      for (PageKey k = key;;) {
        if (auto known = depth.find(k); known != depth.end()) {
          next = known->second + 1;
          break;
        }
        path.push_back(k);
        const PageKey* up = parent_here(k);
        if (!up || path.size() > parent_of.size()) break;
        k = *up;
      }
      for (auto p = path.rbegin(); p != path.rend(); ++p) depth.emplace(*p, next++);
      return depth.at(key);
    };
    std::unordered_map<PageKey, std::vector<PageKey>, KeyHash> children;  // within a chunk
    std::vector<std::pair<uint32_t, PageKey>> heads;
    for (const auto& [key, parent] : parent_of) {
      if (head_of(key) == key) heads.emplace_back(depth_of(key), key);
      else children[parent].push_back(key);
    }
    std::sort(heads.begin(), heads.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : key_order(a.second, b.second);
    });
    std::unordered_set<PageKey, KeyHash> taken;  // each page goes into one run only
    for (const auto& [unused_depth, head] : heads) {
      const int to = cluster::choose_node(head, weights);
      if (to < 0) return Status(Code::kUnavailable, fmt::format("move: cluster {} has no node taking chunks", url_.to_string()));
      if (!plan.nodes[size_t(to)].session)
        return Status(Code::kUnavailable, fmt::format("move: chunk {} belongs on node {} now, which does not answer ({})",
                                                      head.hex().substr(0, 16), plan.nodes[size_t(to)].id,
                                                      plan.nodes[size_t(to)].why_not));
      // Depth first: a run follows the first child down; each other child starts a run after it.
      std::vector<PageKey> starts{head};
      while (!starts.empty()) {
        const PageKey first = starts.back();
        starts.pop_back();
        if (!taken.insert(first).second) continue;
        MoveRun run{from, size_t(to), parent_of[first], {first}};
        for (auto c = children.find(first); c != children.end() && !c->second.empty(); c = children.find(run.keys.back())) {
          std::sort(c->second.begin(), c->second.end(), key_order);
          starts.insert(starts.end(), c->second.begin() + 1, c->second.end());
          if (!taken.insert(c->second.front()).second) break;
          run.keys.push_back(c->second.front());
        }
        plan.runs.push_back(std::move(run));
      }
    }
  }
  return plan;
}

namespace {
Status not_answering(const ClusterRouter::Node& node, const char* op) {
  return Status(Code::kUnavailable, fmt::format("{} on node {}: it does not answer ({})", op, node.id, node.why_not));
}
}  // namespace

Result<ReadLease> ClusterRouter::lookup_on(const Node& node, std::span<const PageKey> keys) {
  if (!node.session) return not_answering(node, "lookup");
  auto reply = node.session->lookup(keys);
  if (!reply) return Status(reply.status().code(), fmt::format("lookup on node {}: {}", node.id, reply.status().message()));
  return LeaseFactory::read_lease(node.session->view(), std::move(reply->pages), reply->lease, node.session);
}

Result<WriteLease> ClusterRouter::reserve_on(const Node& node, const PageKey& parent, std::span<const PageKey> keys) {
  if (!node.session) return not_answering(node, "reserve");
  auto reply = node.session->reserve(parent, keys);
  if (!reply) return Status(reply.status().code(), fmt::format("reserve on node {}: {}", node.id, reply.status().message()));
  const uint8_t* base = primary_->view().base;
  const auto* epoch = node.session->view().serving_epoch;
  WritePart part{reply->lease, node.session, {}, epoch, epoch ? epoch->load(std::memory_order_acquire) : 0};
  std::vector<Placement> pages;
  for (const Placement& p : reply->pages) {
    part.pages.push_back(uint32_t(pages.size()));
    pages.push_back(rebase(p, node.session->view().base, base));
  }
  std::vector<WritePart> parts;
  parts.push_back(std::move(part));
  return LeaseFactory::write_lease_over_nodes(primary_->view(), std::move(pages), std::move(parts));
}

Result<uint32_t> ClusterRouter::remove_on(const Node& node, std::span<const PageKey> keys) {
  if (!node.session) return not_answering(node, "remove");
  const size_t batch = std::max<uint32_t>(node.session->info().max_keys, 1);
  uint32_t removed = 0;
  for (size_t i = 0; i < keys.size(); i += batch) {
    auto r = node.session->remove(keys.subspan(i, std::min(batch, keys.size() - i)));
    if (!r) return Status(r.status().code(), fmt::format("remove on node {}: {}", node.id, r.status().message()));
    removed += *r;
  }
  return removed;
}

}  // namespace cxlkv::detail
