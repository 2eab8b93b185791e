// The C API (cxlkv/cxlkv.h): opaque handles over Client, WriteLease and ReadLease.
#include "cxlkv/cxlkv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "c_handles.h"
#include "cxlkv/client.h"
#include "cxlkv/route.h"

namespace {

thread_local std::string t_last_error;

int fail(const cxlkv::Status& st) { return cxlkv::detail::c_fail(st); }

int fail(cxlkv::Code code, const char* message) { return fail(cxlkv::Status(code, message)); }

int null_argument(const char* call, const char* argument) { return cxlkv::detail::c_null_argument(call, argument); }

bool valid_stream(const cxlkv_client* c, int stream) {
  return c && stream >= 0 && stream < c->client->layout().stream_count();
}

static_assert(sizeof(cxlkv_page_key) == sizeof(cxlkv::PageKey));
static_assert(int(cxlkv::Code::kExpired) == CXLKV_EXPIRED);

std::span<const cxlkv::PageKey> key_span(const cxlkv_page_key* keys, size_t n) {
  return {reinterpret_cast<const cxlkv::PageKey*>(keys), keys ? n : 0};
}

}  // namespace

namespace cxlkv::detail {

int c_fail(const Status& st) {
  if (st.is_ok()) return CXLKV_OK;
  t_last_error = st.to_string();
  return int(st.code());
}

// The answer to a NULL handle or a required pointer left NULL: names the call and the argument.
int c_null_argument(const char* call, const char* argument) {
  return c_fail(Status(Code::kInvalidArgument, std::string(call) + ": " + argument + " is NULL"));
}

}  // namespace cxlkv::detail

namespace {

// cxlkv_route's and cxlkv_router_route's shared part: the affinities as workers, the answer
// computed by `ask` and written as JSON. No exception leaves (an allocation failure, say).
template <typename Ask>
int route_to_json(const char* fn, const cxlkv_page_key* keys, size_t n, const cxlkv_route_affinity* affinities,
                  size_t n_affinities, char* answer, size_t capacity, size_t* answer_len, Ask ask) {
  if (!keys && n > 0) return null_argument(fn, "keys");
  if (!affinities && n_affinities > 0) return null_argument(fn, "affinities");
  if (!answer && capacity > 0) return null_argument(fn, "answer");
  std::string text;
  try {
    std::vector<cxlkv::RouteWorker> workers;
    for (size_t i = 0; i < n_affinities; ++i) {
      const cxlkv_route_affinity& a = affinities[i];
      if (!a.worker) return null_argument(fn, "affinities[i].worker");
      auto w = std::find_if(workers.begin(), workers.end(), [&](const auto& x) { return x.name == a.worker; });
      if (w == workers.end()) w = workers.insert(workers.end(), cxlkv::RouteWorker{a.worker, {}});
      if (a.node) w->node_affinity[a.node] = a.weight;
    }
    const auto* k = reinterpret_cast<const cxlkv::PageKey*>(keys);
    cxlkv::Result<cxlkv::RouteAnswer> r = ask(std::span<const cxlkv::PageKey>(k, keys ? n : 0), workers);
    if (!r) return fail(r.status());
    text = r->to_json();
  } catch (const std::exception& e) {
    return fail(cxlkv::Code::kIoError, (std::string(fn) + ": " + e.what()).c_str());
  }
  if (answer_len) *answer_len = text.size();
  if (text.size() + 1 > capacity)
    return fail(cxlkv::Code::kExhausted, (std::string(fn) + ": the answer needs " + std::to_string(text.size() + 1) +
                                          " bytes, capacity is " + std::to_string(capacity)).c_str());
  std::memcpy(answer, text.c_str(), text.size() + 1);
  return 0;
}

}  // namespace

extern "C" {

const char* cxlkv_last_error(void) { return t_last_error.c_str(); }

int cxlkv_connect(const cxlkv_options* options, cxlkv_client** out) {
  if (!options || !out || !options->endpoint) return fail(cxlkv::Code::kInvalidArgument, "cxlkv_connect: options, endpoint and out are required");
  cxlkv::ClientOptions o;
  o.endpoint = options->endpoint;
  o.tenant = options->tenant ? options->tenant : "";
  o.token = options->token ? options->token : "";
  o.model = options->model ? options->model : "";
  o.want_fd = options->want_fd != 0;
  if (options->region_path) o.region_path = options->region_path;
  if (options->io_timeout_ms > 0) o.io_timeout_ms = options->io_timeout_ms;
  o.read_only = options->read_only != 0;
  if (options->tls_ca_file) o.tls_ca_file = options->tls_ca_file;
  auto client = cxlkv::Client::connect(o);
  if (!client) return fail(client.status());
  auto* handle = new (std::nothrow) cxlkv_client{std::move(*client), {}, {}};
  if (!handle) return fail(cxlkv::Code::kExhausted, "cxlkv_connect: out of memory");
  const cxlkv::Layout& layout = handle->client->layout();
  handle->layout_name = layout.name();
  for (int s = 0; s < layout.stream_count(); ++s) handle->stream_names.push_back(layout.stream_name(s));
  *out = handle;
  return CXLKV_OK;
}

void cxlkv_disconnect(cxlkv_client* client) { delete client; }
uint64_t cxlkv_namespace_id(const cxlkv_client* c) { return c ? c->client->info().namespace_id : 0; }
uint32_t cxlkv_page_tokens(const cxlkv_client* c) { return c ? c->client->page_tokens() : 0; }
uint32_t cxlkv_layers(const cxlkv_client* c) { return c ? c->client->layout().layers() : 0; }
int cxlkv_stream_index(const cxlkv_client* c, const char* name) {
  return c && name ? c->client->layout().find_stream(name) : -1;
}
uint32_t cxlkv_entry_bytes(const cxlkv_client* c, int stream) {
  return valid_stream(c, stream) ? c->client->layout().stream(stream).entry_bytes : 0;
}
const char* cxlkv_layout_name(const cxlkv_client* c) { return c ? c->layout_name.c_str() : nullptr; }
int cxlkv_stream_count(const cxlkv_client* c) { return c ? c->client->layout().stream_count() : 0; }
const char* cxlkv_stream_name(const cxlkv_client* c, int stream) {
  return valid_stream(c, stream) ? c->stream_names[size_t(stream)].c_str() : nullptr;
}
uint32_t cxlkv_entry_stride(const cxlkv_client* c, int stream) {
  return valid_stream(c, stream) ? c->client->layout().stream(stream).entry_stride : 0;
}
int cxlkv_stream_sparse(const cxlkv_client* c, int stream) {
  if (!valid_stream(c, stream)) return -1;
  return c->client->layout().access(stream) == cxlkv::Access::kSparse ? 1 : 0;
}

int cxlkv_get_stats(cxlkv_client* c, cxlkv_stats* out) {
  if (!c) return null_argument("cxlkv_get_stats", "client");
  if (!out) return null_argument("cxlkv_get_stats", "out");
  auto st = c->client->stats();
  if (!st) return fail(st.status());
  *out = {st->pages_committed, st->pages_reserved, st->slabs_total, st->slabs_free, st->read_leases,
          st->write_leases, st->lookup_hits, st->lookup_misses, st->evictions};
  return CXLKV_OK;
}

int cxlkv_remove(cxlkv_client* c, const cxlkv_page_key* keys, size_t n, uint32_t* removed) {
  if (!c) return null_argument("cxlkv_remove", "client");
  if (!keys && n > 0) return null_argument("cxlkv_remove", "keys");
  auto r = c->client->remove(key_span(keys, n));
  if (!r) return fail(r.status());
  if (removed) *removed = *r;
  return CXLKV_OK;
}

size_t cxlkv_page_keys(const cxlkv_client* c, const int32_t* tokens, size_t n_tokens, const cxlkv_page_key* parent,
                       cxlkv_page_key* out, size_t out_capacity) {
  if (!c || (!tokens && n_tokens > 0) || (!out && out_capacity > 0)) return 0;
  cxlkv::PageKey root;
  if (parent) std::memcpy(root.bytes.data(), parent->bytes, sizeof parent->bytes);
  auto keys = c->client->page_keys({tokens, tokens ? n_tokens : 0}, root);
  for (size_t i = 0; i < keys.size() && i < out_capacity; ++i) std::memcpy(out[i].bytes, keys[i].bytes.data(), 32);
  return keys.size();
}

uint64_t cxlkv_namespace_of(const char* tenant, const char* model) {
  return cxlkv::namespace_id(tenant ? tenant : "", model ? model : "");
}

size_t cxlkv_prefix_page_keys(uint64_t ns, uint32_t page_tokens, const int32_t* tokens, size_t n_tokens,
                              const cxlkv_page_key* parent, cxlkv_page_key* out, size_t out_capacity) {
  if (page_tokens == 0 || (!tokens && n_tokens > 0) || (!out && out_capacity > 0)) return 0;
  cxlkv::PageKey root;
  if (parent) std::memcpy(root.bytes.data(), parent->bytes, sizeof parent->bytes);
  auto keys = cxlkv::page_keys({tokens, tokens ? n_tokens : 0}, page_tokens, ns, root);
  for (size_t i = 0; i < keys.size() && i < out_capacity; ++i) std::memcpy(out[i].bytes, keys[i].bytes.data(), 32);
  return keys.size();
}

int cxlkv_route(const char* cluster_url, uint64_t ns, const cxlkv_page_key* keys, size_t n,
                const cxlkv_route_affinity* affinities, size_t n_affinities, int timeout_ms, char* answer,
                size_t capacity, size_t* answer_len) {
  if (!cluster_url) return null_argument("cxlkv_route", "cluster_url");
  return route_to_json("cxlkv_route", keys, n, affinities, n_affinities, answer, capacity, answer_len,
                       [&](std::span<const cxlkv::PageKey> k, const std::vector<cxlkv::RouteWorker>& w) {
                         return cxlkv::route(cluster_url, ns, k, w,
                                             std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 2000));
                       });
}

int cxlkv_router_open(const char* cluster_url, int timeout_ms, int max_age_ms, cxlkv_router** out) {
  if (!cluster_url) return null_argument("cxlkv_router_open", "cluster_url");
  if (!out) return null_argument("cxlkv_router_open", "out");
  if (max_age_ms < 0)
    return fail(cxlkv::Code::kInvalidArgument,
                ("cxlkv_router_open: max_age_ms must be >= 0, got " + std::to_string(max_age_ms)).c_str());
  try {
    auto r = cxlkv::PrefixRouter::open(
        cluster_url, {std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 2000), std::chrono::milliseconds(max_age_ms)});
    if (!r) return fail(r.status());
    *out = new cxlkv_router{std::move(*r)};
  } catch (const std::exception& e) {
    return fail(cxlkv::Code::kIoError, (std::string("cxlkv_router_open: ") + e.what()).c_str());
  }
  return CXLKV_OK;
}

int cxlkv_router_route(cxlkv_router* router, uint64_t ns, const cxlkv_page_key* keys, size_t n,
                       const cxlkv_route_affinity* affinities, size_t n_affinities, char* answer, size_t capacity,
                       size_t* answer_len) {
  if (!router) return null_argument("cxlkv_router_route", "router");
  return route_to_json("cxlkv_router_route", keys, n, affinities, n_affinities, answer, capacity, answer_len,
                       [&](std::span<const cxlkv::PageKey> k, const std::vector<cxlkv::RouteWorker>& w) {
                         return router->router->route(ns, k, w);
                       });
}

uint64_t cxlkv_router_directory_reads(const cxlkv_router* router) {
  return router ? router->router->directory_reads() : 0;
}

void cxlkv_router_close(cxlkv_router* router) { delete router; }

int cxlkv_reserve(cxlkv_client* c, const cxlkv_page_key* parent, const cxlkv_page_key* keys, size_t n,
                  cxlkv_write_lease** out) {
  if (!c) return null_argument("cxlkv_reserve", "client");
  if (!out) return null_argument("cxlkv_reserve", "out");
  if (!keys && n > 0) return null_argument("cxlkv_reserve", "keys");
  cxlkv::PageKey root;
  if (parent) std::memcpy(root.bytes.data(), parent->bytes, sizeof parent->bytes);
  auto lease = c->client->reserve(root, key_span(keys, n));
  if (!lease) return fail(lease.status());
  *out = new cxlkv_write_lease{std::move(*lease)};
  return CXLKV_OK;
}

uint32_t cxlkv_write_lease_pages(const cxlkv_write_lease* l) { return l ? l->lease.pages() : 0; }
int cxlkv_write_lease_writable(const cxlkv_write_lease* l, uint32_t page) {
  return l && page < l->lease.pages() && l->lease.writable(page);
}
int cxlkv_write_entries(cxlkv_write_lease* l, uint32_t page, int stream, uint32_t layer, const void* packed,
                        uint32_t entries) {
  if (!l) return null_argument("cxlkv_write_entries", "lease");
  if (!packed && entries > 0) return null_argument("cxlkv_write_entries", "packed");
  return fail(l->lease.write_entries(page, stream, layer, packed, entries));
}
int cxlkv_commit(cxlkv_client* c, cxlkv_write_lease* l, uint32_t* committed) {
  if (!c) return null_argument("cxlkv_commit", "client");
  if (!l) return null_argument("cxlkv_commit", "lease");
  auto n = c->client->commit(l->lease);
  if (!n) return fail(n.status());
  if (committed) *committed = *n;
  return CXLKV_OK;
}
int cxlkv_abort(cxlkv_client* c, cxlkv_write_lease* l) {
  if (!c) return null_argument("cxlkv_abort", "client");
  if (!l) return null_argument("cxlkv_abort", "lease");
  return fail(c->client->abort(l->lease));
}
void cxlkv_write_lease_free(cxlkv_write_lease* l) { delete l; }

int cxlkv_lookup(cxlkv_client* c, const cxlkv_page_key* keys, size_t n, cxlkv_read_lease** out) {
  if (!c) return null_argument("cxlkv_lookup", "client");
  if (!out) return null_argument("cxlkv_lookup", "out");
  if (!keys && n > 0) return null_argument("cxlkv_lookup", "keys");
  auto lease = c->client->lookup(key_span(keys, n));
  if (!lease) return fail(lease.status());
  *out = new cxlkv_read_lease{std::move(*lease)};
  return CXLKV_OK;
}
uint32_t cxlkv_read_lease_pages(const cxlkv_read_lease* l) { return l ? l->lease.pages() : 0; }
uint32_t cxlkv_read_lease_nodes(const cxlkv_read_lease* l) { return l ? l->lease.nodes() : 0; }
size_t cxlkv_read_lease_placements(const cxlkv_read_lease* l, cxlkv_placement* out, size_t capacity) {
  if (!l) return 0;
  static_assert(sizeof(cxlkv_placement) == sizeof(cxlkv::Placement));
  const auto placements = l->lease.placements();
  if (out) std::memcpy(out, placements.data(), std::min(capacity, placements.size()) * sizeof(cxlkv_placement));
  return placements.size();
}
uint64_t cxlkv_read_lease_id(const cxlkv_read_lease* l) { return l ? l->lease.id() : 0; }
int cxlkv_gather_topk(const cxlkv_read_lease* l, int stream, uint32_t layer, const int32_t* indices, int k, void* dst) {
  if (!l) return null_argument("cxlkv_gather_topk", "lease");
  cxlkv::Status st = l->lease.gather_topk(stream, layer, indices, k, dst);
  return st.is_ok() ? CXLKV_OK : fail(st);
}
int cxlkv_fetch_pages(const cxlkv_read_lease* l, int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst) {
  if (!l) return null_argument("cxlkv_fetch_pages", "lease");
  return fail(l->lease.fetch_pages(stream, layer, p0, p1, dst));
}
int cxlkv_read_lease_check_reuse(const cxlkv_read_lease* l) {
  if (!l) return null_argument("cxlkv_read_lease_check_reuse", "lease");
  return fail(l->lease.check_reuse());
}
int cxlkv_renew(cxlkv_read_lease* l, uint32_t* ttl_ms) {
  if (!l) return null_argument("cxlkv_renew", "lease");
  auto ttl = l->lease.renew();
  if (!ttl) return fail(ttl.status());
  if (ttl_ms) *ttl_ms = *ttl;
  return CXLKV_OK;
}
int cxlkv_release(cxlkv_read_lease* l) {
  if (!l) return null_argument("cxlkv_release", "lease");
  return fail(l->lease.release());
}
void cxlkv_read_lease_free(cxlkv_read_lease* l) { delete l; }

}  // extern "C"
