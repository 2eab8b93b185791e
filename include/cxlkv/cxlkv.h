/* The C API of libcxlkv: the same session, write path and read path as client.h, behind opaque
 * handles, for callers that are not C++ (Python ctypes/cffi, Rust, C serving engines). A thin
 * wrapper over the C++ classes (client/cxlkv.cc); it adds no behaviour of its own.
 * Every int-returning call returns 0 on success or a cxlkv_code; cxlkv_last_error() then gives
 * this thread's message naming the problem and the value. Nothing here throws or aborts: a NULL
 * handle or pointer is CXLKV_INVALID_ARGUMENT (getters of a NULL handle return 0, -1 or NULL). */
#ifndef CXLKV_CXLKV_H
#define CXLKV_CXLKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The values of cxlkv::Code (status.h). */
enum cxlkv_code {
  CXLKV_OK = 0,
  CXLKV_INVALID_ARGUMENT = 1,
  CXLKV_NOT_FOUND = 2,
  CXLKV_ALREADY_EXISTS = 3,
  CXLKV_CORRUPT = 4,
  CXLKV_MISMATCH = 5,
  CXLKV_EXHAUSTED = 6,
  CXLKV_PERMISSION_DENIED = 7,
  CXLKV_BUSY = 8,
  CXLKV_IO_ERROR = 9,
  CXLKV_PROTOCOL = 10,
  CXLKV_UNAVAILABLE = 11,
  CXLKV_EXPIRED = 12
};

typedef struct cxlkv_client cxlkv_client;
typedef struct cxlkv_write_lease cxlkv_write_lease;
typedef struct cxlkv_read_lease cxlkv_read_lease;

/* A page key (page_key.h): 32 bytes; all zero is the parent of a prefix's first page. */
typedef struct cxlkv_page_key {
  uint8_t bytes[32];
} cxlkv_page_key;

typedef struct cxlkv_options {
  const char* endpoint;    /* "unix:/path", "tcp:host:port", "tls:host:port" or "etcd://HOST:PORT/NAME" */
  const char* tenant;
  const char* token;
  const char* model;       /* namespace = (tenant, model) */
  int want_fd;             /* non-zero: on a Unix socket, map the region by the daemon's fd */
  const char* region_path; /* NULL, or a path to map instead of the daemon's (TCP) */
  int io_timeout_ms;       /* per connect, send and receive; 0: the default (30 s) */
  int read_only;           /* non-zero: a reader session, the region mapped read-only */
  const char* tls_ca_file; /* tls: endpoints: PEM file of trusted CAs; NULL: the system's */
} cxlkv_options;

/* This thread's message for the last failed call ("" if none). Valid until the next call. */
const char* cxlkv_last_error(void);

/* Session. */
int cxlkv_connect(const cxlkv_options* options, cxlkv_client** out);
void cxlkv_disconnect(cxlkv_client* client); /* leases still open keep the session alive */
uint64_t cxlkv_namespace_id(const cxlkv_client* client);
uint32_t cxlkv_page_tokens(const cxlkv_client* client);
uint32_t cxlkv_layers(const cxlkv_client* client);
/* Index of the stream called `name` ("latent", "indexer"), or -1. */
int cxlkv_stream_index(const cxlkv_client* client, const char* name);
uint32_t cxlkv_entry_bytes(const cxlkv_client* client, int stream);

/* The layout (layout.h): its name, its streams (0 .. stream_count - 1) with their name, stride
 * and access kind (1: sparse, fetched per entry; 0: bulk, fetched whole). Strings stay valid
 * while the client is connected; an out-of-range stream gives NULL / 0 / -1. */
const char* cxlkv_layout_name(const cxlkv_client* client);
int cxlkv_stream_count(const cxlkv_client* client);
const char* cxlkv_stream_name(const cxlkv_client* client, int stream);
uint32_t cxlkv_entry_stride(const cxlkv_client* client, int stream);
int cxlkv_stream_sparse(const cxlkv_client* client, int stream);

/* The daemon's counters (client.h PoolStats). */
typedef struct cxlkv_stats {
  uint64_t pages_committed, pages_reserved;
  uint64_t slabs_total, slabs_free;
  uint64_t read_leases, write_leases;
  uint64_t lookup_hits, lookup_misses, evictions;
} cxlkv_stats;
int cxlkv_get_stats(cxlkv_client* client, cxlkv_stats* out);
/* Frees the committed, unpinned pages among keys[0..n) of this namespace; *removed (if not NULL)
 * gets how many. */
int cxlkv_remove(cxlkv_client* client, const cxlkv_page_key* keys, size_t n, uint32_t* removed);

/* Keys of the whole pages of tokens[0..n_tokens), chained from parent (NULL = root). Writes at
 * most out_capacity keys; returns the number of whole pages. */
size_t cxlkv_page_keys(const cxlkv_client* client, const int32_t* tokens, size_t n_tokens,
                       const cxlkv_page_key* parent, cxlkv_page_key* out, size_t out_capacity);

/* The same without a session: the namespace id of (tenant, model), and the keys of tokens in it
 * for pages of page_tokens tokens (the pool layout's, 64 for the presets). */
uint64_t cxlkv_namespace_of(const char* tenant, const char* model);
size_t cxlkv_prefix_page_keys(uint64_t namespace_id, uint32_t page_tokens, const int32_t* tokens, size_t n_tokens,
                              const cxlkv_page_key* parent, cxlkv_page_key* out, size_t out_capacity);

/* Routing by the cluster's prefix directory (route.h): how many leading pages of keys[0..n) the
 * cluster at cluster_url ("etcd://HOST:PORT/NAME") holds for namespace_id, on which nodes, and the
 * workers ranked by locality. A worker's affinity to a node is one entry {worker, node, weight};
 * an entry with node NULL names a worker with no affinity. The answer is JSON, written to
 * answer[0..capacity) with its terminating NUL:
 *   {"prefix_pages":N,"cached_pages":M,"nodes":{"<node>":pages,...},
 *    "workers":[{"name":"<w>","score":S,"local_pages":P},...]}   (workers best first)
 * *answer_len (if not NULL) gets its length without the NUL; CXLKV_EXHAUSTED when capacity is
 * too small for it (nothing written; call again with *answer_len + 1). */
typedef struct cxlkv_route_affinity {
  const char* worker;
  const char* node;
  double weight;
} cxlkv_route_affinity;
int cxlkv_route(const char* cluster_url, uint64_t namespace_id, const cxlkv_page_key* keys, size_t n,
                const cxlkv_route_affinity* affinities, size_t n_affinities, int timeout_ms, char* answer,
                size_t capacity, size_t* answer_len);

/* A router that keeps the directory it read (route.h, PrefixRouter): for a scheduler asking per
 * request. Each namespace's summaries are read again once older than max_age_ms (0: every call);
 * timeout_ms bounds each etcd read (0: 2 s). cxlkv_router_route answers as cxlkv_route does.
 * One router may be shared by threads; close it when no call is under way. */
typedef struct cxlkv_router cxlkv_router;
int cxlkv_router_open(const char* cluster_url, int timeout_ms, int max_age_ms, cxlkv_router** out);
int cxlkv_router_route(cxlkv_router* router, uint64_t namespace_id, const cxlkv_page_key* keys, size_t n,
                       const cxlkv_route_affinity* affinities, size_t n_affinities, char* answer, size_t capacity,
                       size_t* answer_len);
uint64_t cxlkv_router_directory_reads(const cxlkv_router* router); /* etcd reads of summaries so far */
void cxlkv_router_close(cxlkv_router* router);

/* Write path (write_lease.h). Writes to a page flagged cached/in flight are no-ops. */
int cxlkv_reserve(cxlkv_client* client, const cxlkv_page_key* parent, const cxlkv_page_key* keys, size_t n,
                  cxlkv_write_lease** out);
uint32_t cxlkv_write_lease_pages(const cxlkv_write_lease* lease);
int cxlkv_write_lease_writable(const cxlkv_write_lease* lease, uint32_t page);
int cxlkv_write_entries(cxlkv_write_lease* lease, uint32_t page, int stream, uint32_t layer, const void* packed,
                        uint32_t entries);
int cxlkv_commit(cxlkv_client* client, cxlkv_write_lease* lease, uint32_t* committed);
int cxlkv_abort(cxlkv_client* client, cxlkv_write_lease* lease);
void cxlkv_write_lease_free(cxlkv_write_lease* lease); /* aborts a lease still open */

/* Read path (read_lease.h). An empty lease (0 pages) is returned when the first key misses. */
int cxlkv_lookup(cxlkv_client* client, const cxlkv_page_key* keys, size_t n, cxlkv_read_lease** out);
uint32_t cxlkv_read_lease_pages(const cxlkv_read_lease* lease);
/* The memory nodes the lease's pages are on: 1, or more over a cluster (endpoint etcd://). */
uint32_t cxlkv_read_lease_nodes(const cxlkv_read_lease* lease);
/* The lease's block table (pool_view.h Placement): where each page lives in the region. */
typedef struct cxlkv_placement {
  uint64_t slab_offset; /* from the region base (over several nodes: ReadLease::placement) */
  uint64_t generation;
  uint32_t slab;
  uint16_t position; /* in the slab, 0 .. E - 1 */
  uint16_t flags;
} cxlkv_placement;
/* Copies min(pages, capacity) placements into out; returns the lease's page count. */
size_t cxlkv_read_lease_placements(const cxlkv_read_lease* lease, cxlkv_placement* out, size_t capacity);
/* The daemon's id of the lease; 0 for an empty or released lease. */
uint64_t cxlkv_read_lease_id(const cxlkv_read_lease* lease);
/* HOT: no lock, no allocation, no system call. Index = page * page_tokens + offset; -1 skipped
 * (dst row untouched); any index < -1 or past the prefix fails and nothing is read. */
int cxlkv_gather_topk(const cxlkv_read_lease* lease, int stream, uint32_t layer, const int32_t* indices, int k,
                      void* dst);
int cxlkv_fetch_pages(const cxlkv_read_lease* lease, int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst);
/* CXLKV_OK while no slab of the lease's pages was freed or reused since they were last known
 * good; CXLKV_EXPIRED (naming the page) once one was. Gathers and fetches check this themselves;
 * a reader whose copies ran elsewhere (the GPU path) calls it once they have completed. */
int cxlkv_read_lease_check_reuse(const cxlkv_read_lease* lease);
int cxlkv_renew(cxlkv_read_lease* lease, uint32_t* ttl_ms);
int cxlkv_release(cxlkv_read_lease* lease);
void cxlkv_read_lease_free(cxlkv_read_lease* lease); /* releases */

#ifdef __cplusplus
}
#endif

#endif /* CXLKV_CXLKV_H */
