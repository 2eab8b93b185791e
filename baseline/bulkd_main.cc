// cxlkv-bulkd: the serving side of the RDMA bulk-fetch baseline. Maps a pool region read-only by
// path (shm name, file, or devdax device) and serves range reads over TCP and, with --rdma, RC
// RDMA READs of the registered region (QP and rkey exchanged over the TCP side channel).
//   cxlkv-bulkd --backend shm --path /cxlkv-pool --listen 0.0.0.0:7400 [--rdma --rdma-device rxe0]
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bulk_server.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace cxlkv;
  CLI::App app{"cxlkv-bulkd: serves a cxlkv region read-only over TCP range reads and RDMA READs (the bulk-fetch baseline)"};
  baseline::BulkServerOptions o;
  std::string backend = "shm", port_file;
  int gid = -1;
  unsigned rdma_port = 1;
  app.add_option("--backend", backend, "region backend: shm, numa, file, devdax");
  app.add_option("--path", o.region.path, "shm name (/cxlkv-pool), file path, or /dev/daxX.Y")->required();
  app.add_option("--listen", o.listen, "host:port to listen on (port 0: any free port)");
  app.add_flag("--rdma", o.rdma, "also serve RDMA READs (needs an RDMA device, e.g. Soft-RoCE rxe0)");
  app.add_option("--rdma-device", o.rdma_options.device, "RDMA device name (default: the first)");
  app.add_option("--rdma-port", rdma_port, "RDMA port number");
  app.add_option("--gid-index", gid, "GID index (default: the first IPv4-mapped GID, RoCE v2)");
  app.add_option("--port-file", port_file, "write the bound TCP port here once listening");
  CLI11_PARSE(app, argc, argv);
  o.rdma_options.port = uint8_t(rdma_port);
  o.rdma_options.gid_index = gid;
  auto b = cxl::parse_backend(backend);
  if (!b) {
    std::fprintf(stderr, "cxlkv-bulkd: %s\n", b.status().to_string().c_str());
    return 2;
  }
  o.region.backend = *b;
  auto server = baseline::BulkServer::start(o);
  if (!server) {
    std::fprintf(stderr, "cxlkv-bulkd: %s\n", server.status().to_string().c_str());
    return 1;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  auto& s = **server;
  std::fprintf(stderr, "cxlkv-bulkd: region %s (%llu B, %u slabs), listening on port %u, rdma %s\n", s.region().name().c_str(),
               static_cast<unsigned long long>(s.region().size()), s.region().geometry().slab_count, unsigned(s.port()),
               s.rdma_description().c_str());
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << s.port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::thread watcher([&s] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s.stop();
  });
  s.run();
  g_stop = true;
  watcher.join();
  server->reset();
  return 0;
}
