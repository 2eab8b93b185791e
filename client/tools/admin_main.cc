// cxlkv-admin: what a running cxlkv-poold serves, asked through its control plane as a tenant of
// the admin role (include/cxlkv/admin.h): its partitions (region, slabs, pages, leases, tenants)
// and its totals; `drain` stops new pages landing on the node (a cluster places them elsewhere)
// and waits, if asked, until its write leases have ended; `resume` ends the drain; `reload` has
// the daemon serve the partitions and tenants new in its configuration file; `remove-partition`
// moves a partition's pages into another and closes it, online. For operators; prints a table,
// or JSON with --json. `move` is a tenant's, not the admin's: it moves that
// tenant's namespace (tenant, model) off the draining nodes of a cluster (Client::move_off_draining).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cxlkv/admin.h"

namespace {

using namespace cxlkv;

int fail(const std::string& message) {
  std::fprintf(stderr, "cxlkv-admin: %s\n", message.c_str());
  return 2;
}

nlohmann::json to_json(const PartitionStatus& p) {
  return {{"name", p.name},
          {"region", p.region},
          {"region_bytes", p.region_bytes},
          {"slabs_total", p.slabs_total},
          {"slabs_free", p.slabs_free},
          {"pages_committed", p.pages_committed},
          {"pages_reserved", p.pages_reserved},
          {"read_leases", p.read_leases},
          {"write_leases", p.write_leases},
          {"tenants", p.tenants},
          {"metadata", p.metadata},
          {"draining", p.draining}};
}

}  // namespace

int main(int argc, char** argv) {
  ClientOptions o;
  std::string token_file;
  bool json = false;
  CLI::App app{"cxlkv-admin: what a cxlkv-poold serves, asked as a tenant of the admin role"};
  app.add_option("--endpoint", o.endpoint, "the daemon: unix:PATH, tcp:HOST:PORT or tls:HOST:PORT (move: the cluster, etcd://HOST:PORT/NAME)")->capture_default_str();
  app.add_option("--tenant", o.tenant, "a tenant the daemon allows the admin role (roles = [\"admin\"])")->required();
  auto* token = app.add_option("--token", o.token, "its token (prefer --token-file: a command line is visible to all)");
  app.add_option("--token-file", token_file, "a file whose first line is the token")->check(CLI::ExistingFile);
  app.add_option("--tls-ca", o.tls_ca_file, "tls: endpoints: PEM file of the CAs that may sign the daemon's certificate");
  app.add_option("--timeout-ms", o.io_timeout_ms, "per connect, send and receive")->capture_default_str();
  app.add_flag("--json", json, "print JSON instead of a table");
  app.require_subcommand(1);
  auto* partitions = app.add_subcommand("partitions", "every partition: region, slabs, pages, leases, tenants, and "
                                        "where its page records lie (--json: metadata)");
  app.add_subcommand("stats", "the daemon's counters over all its partitions");
  uint32_t wait_s = 0;
  auto* drain = app.add_subcommand("drain", "drain the node: reserves refused (a cluster client places new chunks on the "
                                   "other nodes), lookups and reads served, open write leases may still commit");
  drain->add_option("--wait-s", wait_s, "then wait up to this many seconds for the open write leases to end (0: do "
                    "not wait); exit 3 if some remain")->capture_default_str();
  auto* resume = app.add_subcommand("resume", "end a drain: the node takes new pages again");
  auto* move = app.add_subcommand("move", "move one namespace's pages off the cluster's draining nodes to where new "
                                  "chunks go (--endpoint etcd://HOST:PORT/NAME; --tenant and its token are that "
                                  "namespace's tenant's, not the admin's); exit 3 if some pages stay");
  move->add_option("--model", o.model, "the namespace's model (with --tenant)")->required();
  auto* reload = app.add_subcommand("reload", "the daemon reads its configuration file again and serves the partitions "
                                    "and tenants new in it (as SIGHUP does); changes to served ones are listed, "
                                    "applied at its next start");
  std::string partition_name, into;
  auto* remove = app.add_subcommand("remove-partition", "remove a partition online: it drains (reserves refused), "
                                    "then its pages are copied into --into, its tenants bound there and their "
                                    "sessions closed (clients connect again), and it is closed; its backing stays. "
                                    "Exit 3 if it has not ended after --wait-s");
  remove->add_option("name", partition_name, "the partition to remove")->required();
  remove->add_option("--into", into, "the partition that takes its pages and tenants")->required();
  uint32_t remove_wait_s = 600;
  remove->add_option("--wait-s", remove_wait_s, "wait up to this many seconds for it to end (its write leases, then "
                     "the copy); the daemon carries on past it, and asking again reports progress")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!token_file.empty()) {
    std::FILE* f = std::fopen(token_file.c_str(), "r");
    char line[4096] = {};
    if (!f || !std::fgets(line, sizeof line, f)) return fail(fmt::format("--token-file {}: cannot read a line", token_file));
    std::fclose(f);
    o.token = line;
    while (!o.token.empty() && (o.token.back() == '\n' || o.token.back() == '\r')) o.token.pop_back();
  } else if (token->count() == 0) {
    return fail("give --token or --token-file");
  }

  if (move->parsed()) {
    auto client = Client::connect(o);
    if (!client) return fail(client.status().to_string());
    auto r = (*client)->move_off_draining();
    if (!r) return fail(r.status().to_string());
    const nlohmann::json out = {{"draining_nodes", r->draining_nodes}, {"pages_listed", r->pages_listed},
                                {"pages_moved", r->pages_moved},       {"pages_already_there", r->pages_already_there},
                                {"pages_removed", r->pages_removed},   {"pages_left", r->pages_left}};
    std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
    return r->pages_left > 0 ? 3 : 0;
  }
  auto admin = AdminClient::connect(o);
  if (!admin) return fail(admin.status().to_string());
  if (partitions->parsed()) {
    auto all = (*admin)->partitions();
    if (!all) return fail(all.status().to_string());
    if (json) {
      nlohmann::json out = nlohmann::json::array();
      for (const PartitionStatus& p : *all) out.push_back(to_json(p));
      std::printf("%s\n", out.dump().c_str());
      return 0;
    }
    std::printf("%-12s %-32s %10s %10s %10s %10s %8s %8s  %s\n", "partition", "region", "GiB", "slabs", "free", "pages",
                "r-leases", "w-leases", "tenants");
    for (const PartitionStatus& p : *all) {
      std::string tenants;
      for (const std::string& t : p.tenants) tenants += (tenants.empty() ? "" : ",") + t;
      std::printf("%-12s %-32s %10.2f %10llu %10llu %10llu %8llu %8llu  %s\n", p.name.c_str(), p.region.c_str(),
                  double(p.region_bytes) / double(1ull << 30), (unsigned long long)p.slabs_total,
                  (unsigned long long)p.slabs_free, (unsigned long long)p.pages_committed,
                  (unsigned long long)p.read_leases, (unsigned long long)p.write_leases, tenants.c_str());
    }
    return 0;
  }
  if (reload->parsed()) {
    auto r = (*admin)->reload();
    if (!r) return fail(r.status().to_string());
    const nlohmann::json out = {{"partitions_added", r->partitions_added}, {"tenants_added", r->tenants_added},
                                {"not_applied", r->not_applied}};
    std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
    return 0;
  }
  if (remove->parsed()) {
    auto r = (*admin)->remove_partition(partition_name, into);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(remove_wait_s);
    auto last_line = std::chrono::steady_clock::now();
    while (r && !r->removed && std::chrono::steady_clock::now() < deadline) {
      if (std::chrono::steady_clock::now() - last_line >= std::chrono::seconds(1)) {  // a progress line a second
        std::fprintf(stderr, "cxlkv-admin: partition %s: %llu write lease(s) open, %llu pages copied\n",
                     partition_name.c_str(), (unsigned long long)r->write_leases, (unsigned long long)r->pages_copied);
        last_line = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      r = (*admin)->remove_partition(partition_name, into);
    }
    if (!r) return fail(r.status().to_string());
    const nlohmann::json out = {{"removed", r->removed},
                                {"write_leases", r->write_leases},
                                {"pages_copied", r->pages_copied},
                                {"pages_already_there", r->pages_already_there},
                                {"bytes_copied", r->bytes_copied},
                                {"sessions_closed", r->sessions_closed},
                                {"tenants_moved", r->tenants_moved},
                                {"copy_seconds", r->copy_seconds}};
    std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
    return r->removed ? 0 : 3;
  }
  if (drain->parsed() || resume->parsed()) {
    auto d = (*admin)->drain(drain->parsed());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
    while (d && d->write_leases > 0 && std::chrono::steady_clock::now() < deadline) {
      std::fprintf(stderr, "cxlkv-admin: draining, %llu write lease(s) open\n", (unsigned long long)d->write_leases);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      d = (*admin)->drain_status();  // only asks: a resume meanwhile stands
    }
    if (!d) return fail(d.status().to_string());
    const nlohmann::json out = {{"draining", d->draining}, {"write_leases", d->write_leases},
                                {"read_leases", d->read_leases}, {"pages_committed", d->pages_committed}};
    std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
    return wait_s > 0 && d->write_leases > 0 ? 3 : 0;
  }
  auto s = (*admin)->stats();
  if (!s) return fail(s.status().to_string());
  const nlohmann::json out = {{"pages_committed", s->pages_committed}, {"pages_reserved", s->pages_reserved},
                              {"slabs_total", s->slabs_total},         {"slabs_free", s->slabs_free},
                              {"read_leases", s->read_leases},         {"write_leases", s->write_leases},
                              {"lookup_hits", s->lookup_hits},         {"lookup_misses", s->lookup_misses},
                              {"evictions", s->evictions}};
  std::printf("%s\n", json ? out.dump().c_str() : out.dump(2).c_str());
  return 0;
}
