// PooldProcess: starts the real daemon binary (cxlkv-poold) on a private shm region and socket,
// waits until it accepts connections, and stops it (SIGTERM, then SIGKILL) and removes its region
// and socket when destroyed. For integration tests and benchmarks; never linked into libcxlkv.
// Names include the pid and a counter, so concurrent tests never share a daemon by accident.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cxlkv/status.h"
#include "region.h"

namespace cxlkv::testing {

struct PooldOptions {
  std::string exe;                  // empty: $CXLKV_POOLD
  std::string layout = "deepseek-v3.2";
  uint32_t slab_pages = 1;
  std::string size = "1GiB";
  bool tcp = false;                 // also listen on 127.0.0.1:<free port>
  std::vector<std::string> tenants; // "name:token"; empty = open auth
  std::vector<std::string> extra;   // more flags
  std::string log_level = "warn";
};

class PooldProcess {
 public:
  static Result<std::unique_ptr<PooldProcess>> start(const PooldOptions& options) {
    std::string exe = options.exe;
    if (exe.empty()) {
      const char* env = std::getenv("CXLKV_POOLD");
      if (env == nullptr || *env == '\0') return Status(Code::kUnavailable, "CXLKV_POOLD is not set: the daemon binary to test against");
      exe = env;
    }
    static std::atomic<int> counter{0};
    std::unique_ptr<PooldProcess> p(new PooldProcess());
    const std::string tag = fmt::format("cxlkv-c{}-{}", getpid(), counter++);
    p->region_ = {cxl::Backend::kShm, "/" + tag, -1, 0};
    p->socket_ = "/tmp/" + tag + ".sock";
    if (options.tcp) {
      auto port = free_tcp_port();
      if (!port) return port.status();
      p->tcp_port_ = *port;
    }
    std::vector<std::string> args = {exe, "--backend", "shm", "--path", p->region_.path, "--size", options.size,
                                     "--layout", options.layout, "--slab-pages", std::to_string(options.slab_pages),
                                     "--socket", p->socket_, "--metrics-port", "0", "--log-level", options.log_level};
    if (options.tcp) args.insert(args.end(), {"--tcp", fmt::format("127.0.0.1:{}", p->tcp_port_)});
    for (const auto& t : options.tenants) args.insert(args.end(), {"--tenant", t});
    args.insert(args.end(), options.extra.begin(), options.extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    p->pid_ = fork();
    if (p->pid_ < 0) return io_error("fork for " + exe);
    if (p->pid_ == 0) {
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (Status st = p->wait_ready(); !st) return st;
    return p;
  }

  ~PooldProcess() {
    (void)stop();
    ::unlink(socket_.c_str());
    (void)cxl::Region::remove(region_);
  }
  PooldProcess(const PooldProcess&) = delete;
  PooldProcess& operator=(const PooldProcess&) = delete;

  std::string unix_endpoint() const { return "unix:" + socket_; }
  std::string tcp_endpoint() const { return fmt::format("tcp:127.0.0.1:{}", tcp_port_); }
  const cxl::RegionSpec& region() const { return region_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, up to 5 s for a clean exit, then SIGKILL. Returns the exit status as a Status.
  Status stop() {
    if (pid_ <= 0) return Status::ok();
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::ok();
        return Status(Code::kUnavailable, fmt::format("cxlkv-poold exited with status {:#x}", status));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill9();
    return Status(Code::kUnavailable, "cxlkv-poold did not exit within 5 s of SIGTERM; killed");
  }
  // kill -9 and reap.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  PooldProcess() = default;

  static Result<uint16_t> free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return io_error("socket for a free port");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      return io_error("bind for a free port");
    }
    ::close(fd);
    return uint16_t(ntohs(addr.sin_port));
  }

  // Polls the Unix socket (and the TCP port) until they accept, for up to 20 s.
  Status wait_ready() {
    for (int i = 0; i < 2000; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return Status(Code::kUnavailable, fmt::format("cxlkv-poold exited during start-up with status {:#x}", status));
      }
      if (accepts_unix() && (tcp_port_ == 0 || accepts_tcp())) return Status::ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill9();
    return Status(Code::kUnavailable, "cxlkv-poold did not accept connections within 20 s");
  }
  bool accepts_unix() const {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }
  bool accepts_tcp() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(tcp_port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  cxl::RegionSpec region_;
  std::string socket_;
  uint16_t tcp_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace cxlkv::testing
