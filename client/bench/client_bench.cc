// cxlkv-bench-client: CPU-side client benchmarks. Subcommands: gather (top-k gather vs memcpy,
// no daemon), lookup (round trips over Unix and TCP), commit (reserve+commit with and without
// data), lookup-load (lookups under 1..256 concurrent clients), cluster-lookup (a lookup over N
// nodes vs one), remove-partition (a partition's pages moved into another online). Each prints its ceiling or bar beside the result.
#include <CLI/CLI.hpp>

#include "cluster_bench.h"
#include "control_bench.h"
#include "gather_bench.h"

int main(int argc, char** argv) {
  using namespace cxlkv::bench;
  CLI::App app{"cxlkv-bench-client: libcxlkv CPU benchmarks"};
  app.require_subcommand(1);
  GatherBenchOptions g;
  auto* gather = app.add_subcommand("gather", "top-k gather throughput vs a contiguous memcpy of the same bytes");
  gather->add_option("--layout", g.layout, "layout spec (default: the deepseek-v3.2 streams over 4 layers)");
  gather->add_option("--slab-pages", g.slab_pages, "E, pages per slab");
  gather->add_option("--stream", g.stream, "stream to gather");
  gather->add_option("--prefix-tokens", g.prefix_tokens, "tokens in the leased prefix");
  gather->add_option("-k", g.k, "entries per gather");
  gather->add_option("--rounds", g.rounds, "rounds (each gathers every layer once, then copies as much)");
  gather->add_option("--threads", g.threads, "threads splitting each call: gather and memcpy alike")->capture_default_str();
  gather->add_option("--repeats", g.repeats, "each block makes layers x this many calls per thread")->capture_default_str();
  gather->add_option("--backing", g.backing, "shm, or a file path (file backend; on hugetlbfs: 2 MiB pages)");
  ControlBenchOptions c;
  auto* lookup = app.add_subcommand("lookup", "lookup round trip p50/p99 over the Unix socket and TCP (and TLS)");
  auto* commit = app.add_subcommand("commit", "reserve + commit of a prefix, with and without writing its data");
  for (auto* sub : {lookup, commit}) {
    sub->add_option("--poold", c.poold, "daemon binary to start privately (default $CXLKV_POOLD)");
    sub->add_option("--endpoint", c.endpoint, "use a running daemon instead (unix:/path or tcp:host:port)");
    sub->add_option("--layout", c.layout, "layout of the private daemon's region");
    sub->add_option("--keys", c.keys, "pages per lookup or commit");
  }
  lookup->add_option("--iters", c.iters, "lookups per transport");
  lookup->add_flag("--tls", c.tls, "also over TLS: a second private daemon with the test kit's certificate");
  ClusterBenchOptions k;
  auto* cluster = app.add_subcommand("cluster-lookup",
                                     "lookup p50/p99 over a cluster of N nodes (a private etcd) vs one node, alternated");
  cluster->add_option("--poold", k.poold, "daemon binary (default $CXLKV_POOLD)");
  cluster->add_option("--nodes", k.nodes, "memory nodes in the cluster")->capture_default_str();
  cluster->add_option("--keys", k.keys, "pages per lookup")->capture_default_str();
  cluster->add_option("--chunk-pages", k.chunk_pages, "pages per placement chunk")->capture_default_str();
  cluster->add_option("--iters", k.iters, "lookups of each kind")->capture_default_str();
  cluster->add_option("--json", k.json, "also write the figures to this file");
  commit->add_option("--iters", c.commit_iters, "commits of each kind");
  auto* load = app.add_subcommand("lookup-load",
                                  "lookups/s and lookup p50/p99 with 1..256 concurrent clients, writes mixed in");
  load->add_option("--poold", c.poold, "daemon binary to start privately (default $CXLKV_POOLD)");
  load->add_option("--endpoint", c.endpoint, "use a running daemon instead (unix:/path or tcp:host:port)");
  load->add_option("--layout", c.layout, "layout of the private daemon's region");
  load->add_option("--keys", c.keys, "pages per lookup")->capture_default_str();
  load->add_option("--clients", c.clients, "concurrent clients, one level each")->capture_default_str();
  load->add_option("--seconds", c.seconds, "seconds per level")->capture_default_str();
  load->add_option("--write-every", c.write_every, "one reserve + commit + remove in this many operations (0: none)")
      ->capture_default_str();
  load->add_option("--write-pages", c.write_pages, "pages per write")->capture_default_str();
  load->add_option("--daemon-cpu", c.daemon_cpu, "pin the private daemon to this CPU and the clients to the others "
                                                 "(-1: no pinning)")->capture_default_str();
  auto* remove = app.add_subcommand("remove-partition", "a partition removed online: its pages copied into another, "
                                    "and another tenant's lookups meanwhile");
  remove->add_option("--poold", c.poold, "daemon binary to start privately (default $CXLKV_POOLD)");
  remove->add_option("--layout", c.layout, "layout of the private daemon's partitions");
  remove->add_option("--pages", c.remove_pages, "pages in the partition removed")->capture_default_str();
  remove->add_option("--keys", c.keys, "pages per prefix written")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (remove->parsed()) return run_remove_partition_bench(c);
  if (gather->parsed()) return run_gather_bench(g);
  if (lookup->parsed()) return run_lookup_bench(c);
  if (cluster->parsed()) return run_cluster_lookup_bench(k);
  if (load->parsed()) return run_lookup_load_bench(c);
  return run_commit_bench(c);
}
