// Fuzz target: the RDMA baseline's side channel (baseline/bulk_wire.h) as cxlkv-bulkd serves it.
// A real BulkServer over a small formatted region listens on loopback; each input is the byte
// stream of one TCP connection, sent while the answers are drained, until the server closes or
// has answered everything. The server must answer or close, never crash, hang or leak a thread.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "bulk_server.h"
#include "bulk_wire.h"
#include "fuzz_pool.h"

using namespace cxlkv;
using namespace cxlkv::baseline;

namespace {

// Never destroyed: its accept thread runs until the process exits, and tearing the server down
// under it at exit would be a use after free of the harness's own making.
BulkServer* server = nullptr;

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  return {b, b + n};
}

void write_seeds() {
  const wire::RequestHeader info = wire::request(wire::kInfo, 0, 0);
  const wire::RequestHeader read = wire::request(wire::kRead, 2, 2 * sizeof(wire::ReadRange));
  const wire::ReadRange ranges[2] = {{0, 4096, 0}, {1 << 20, 64, 0}};
  std::vector<uint8_t> read_seed = bytes_of(&read, sizeof read);
  const auto r = bytes_of(ranges, sizeof ranges);
  read_seed.insert(read_seed.end(), r.begin(), r.end());
  std::vector<uint8_t> both = bytes_of(&info, sizeof info);
  both.insert(both.end(), read_seed.begin(), read_seed.end());
  const wire::RequestHeader rdma = wire::request(wire::kRdmaConnect, 0, sizeof(wire::RdmaEndpoint));
  std::vector<uint8_t> rdma_seed = bytes_of(&rdma, sizeof rdma);
  rdma_seed.resize(rdma_seed.size() + sizeof(wire::RdmaEndpoint));
  fuzz::maybe_write_seeds({{"info", bytes_of(&info, sizeof info)}, {"read", read_seed}, {"info-read", both},
                           {"rdma-connect-without-device", rdma_seed}});
}

// A connection to the server. Closed with a reset (SO_LINGER 0) once the server has closed its
// side, so neither end keeps a TIME_WAIT socket: a million inputs would exhaust the ephemeral ports.
int connect_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int tries = 0; ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++tries) {
    if ((errno != EINTR && errno != EADDRNOTAVAIL && errno != EAGAIN) || tries == 500) std::abort();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  write_seeds();
  fuzz::FuzzRegion r = fuzz::make_region("bulk", 4 << 20, 1);
  BulkServerOptions o;
  o.region = r.spec;
  auto s = BulkServer::start(o);
  if (!s) std::abort();
  server = s->release();
  std::thread([] { server->run(); }).detach();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = connect_loopback(server->port());
  size_t sent = 0;
  bool write_open = true;
  char sink[64 << 10];
  for (;;) {
    if (write_open && sent == size) {
      ::shutdown(fd, SHUT_WR);  // the server sees the end of the stream after the input
      write_open = false;
    }
    pollfd p{fd, short(POLLIN | (write_open ? POLLOUT : 0)), 0};
    const int ready = ::poll(&p, 1, 15000);
    if (ready < 0 && errno == EINTR) continue;  // libFuzzer's -timeout alarm ticks every second
    if (ready != 1) std::abort();               // 15 s with nothing to read or write: the server hangs
    if (p.revents & POLLOUT) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += size_t(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) write_open = false;  // closed by the server
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;  // the server closed: this input is done
    }
  }
  ::close(fd);
  return 0;
}
