// PooldProcess: runs the real cxlkv-poold binary as a child and always ends it, so no daemon
// outlives a test. Two ways in: the raw form (the caller's own arguments and socket; log to a file,
// dies with the test process; tests/pool) and start(PooldOptions) (a private shm region, socket and
// optional TCP port; stderr inherited; client, kernels and baseline tests, client benchmarks).
// For tests and benchmarks only: never linked into libcxlkv or the daemon.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cxlkv/status.h"
#include "region.h"

namespace cxlkv::testing {

// A name unique to this test process: "/tmp/cxlkv-pool-<pid>-<n>-<tag>" (socket paths), or with
// shm = true "/cxlkv-pool-<pid>-<n>-<tag>" (shm region names).
inline std::string unique_name(const std::string& tag, bool shm = false) {
  static std::atomic<int> counter{0};
  const std::string base = "cxlkv-pool-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + tag;
  return shm ? "/" + base : "/tmp/" + base;
}

// Connects a Unix stream socket to `path`; -1 when nobody answers.
inline int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A loopback TCP port nobody listens on now (the kernel's choice), for a child to listen on.
inline Result<uint16_t> free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

// SIGKILL to the child `pid` and reap it; pid becomes -1. No-op when pid <= 0.
inline void kill_and_reap(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  pid = -1;
}

// What start(PooldOptions) passes to the daemon; region and socket names are chosen for it.
struct PooldOptions {
  std::string exe;                  // empty: $CXLKV_POOLD
  std::string layout = "deepseek-v3.2";
  uint32_t slab_pages = 1;
  std::string size = "1GiB";
  bool tcp = false;                 // also listen on 127.0.0.1:<free port>
  std::vector<std::string> tenants; // "name:token"; empty = open auth
  std::vector<std::string> extra;   // more flags
  std::string log_level = "warn";
  // "off" keeps the region the shm object the test names (and removes); "auto" may place it on
  // hugetlbfs where the machine has free pages.
  std::string huge_pages = "off";
};

class PooldProcess {
 public:
  // Raw form: `args` follow the binary's path; its log (stdout, stderr) goes to
  // "<socket_path>.log"; the child dies with the test process (PR_SET_PDEATHSIG). Not started yet.
  PooldProcess(std::vector<std::string> args, std::string socket_path)
      : args_(std::move(args)), socket_(std::move(socket_path)), log_(socket_ + ".log"), die_with_parent_(true) {}

  // Options form: a private shm region "/cxlkv-c<pid>-<n>" and socket "/tmp/cxlkv-c<pid>-<n>.sock"
  // (and a free loopback TCP port with options.tcp), started and ready (up to 20 s) or an error
  // naming why. Its stderr is the test's; the destructor stops it with SIGTERM and removes the region.
  static Result<std::unique_ptr<PooldProcess>> start(const PooldOptions& options) {
    std::string exe = options.exe.empty() ? binary() : options.exe;
    if (exe.empty()) return Status(Code::kUnavailable, "CXLKV_POOLD is not set: the daemon binary to test against");
    static std::atomic<int> counter{0};
    const std::string tag = fmt::format("cxlkv-c{}-{}", getpid(), counter++);
    std::unique_ptr<PooldProcess> p(new PooldProcess());
    p->exe_ = exe;
    p->region_ = {cxl::Backend::kShm, "/" + tag, -1, 0};
    p->owns_region_ = true;
    p->socket_ = "/tmp/" + tag + ".sock";
    if (options.tcp) {
      auto port = free_tcp_port();
      if (!port) return port.status();
      p->tcp_port_ = *port;
    }
    p->args_ = {"--backend", "shm", "--path", p->region_.path, "--size", options.size,
                "--layout", options.layout, "--slab-pages", std::to_string(options.slab_pages),
                "--socket", p->socket_, "--metrics-port", "0", "--log-level", options.log_level,
                "--huge-pages", options.huge_pages};
    if (options.tcp) p->args_.insert(p->args_.end(), {"--tcp", fmt::format("127.0.0.1:{}", p->tcp_port_)});
    for (const auto& t : options.tenants) p->args_.insert(p->args_.end(), {"--tenant", t});
    p->args_.insert(p->args_.end(), options.extra.begin(), options.extra.end());
    if (!p->launch()) return io_error("fork for " + exe);
    if (Status st = p->ready(std::chrono::seconds(20)); !st) {
      p->kill9();
      return st;
    }
    return p;
  }

  ~PooldProcess() {
    if (owns_region_) (void)shutdown();
    else kill9();
    if (!log_.empty()) ::unlink(log_.c_str());
    ::unlink(socket_.c_str());  // a killed daemon leaves its socket file
    if (owns_region_) (void)cxl::Region::remove(region_);
  }
  PooldProcess(const PooldProcess&) = delete;
  PooldProcess& operator=(const PooldProcess&) = delete;

  // The daemon binary under test: $CXLKV_POOLD, or "" when unset.
  static std::string binary() {
    const char* p = std::getenv("CXLKV_POOLD");
    return p ? p : "";
  }

  // Starts the daemon; true once its socket accepts a connection, false if it exited first or
  // did not get ready within `timeout`.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(10)) { return launch() && wait_ready(timeout); }

  // Forks and execs the daemon without waiting for it (to kill it during startup and recovery).
  bool launch() {
    kill9();
    const std::string bin = exe_.empty() ? binary() : exe_;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      if (die_with_parent_) prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (!log_.empty()) {
        const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log >= 0) ::dup2(log, STDERR_FILENO), ::dup2(log, STDOUT_FILENO);
      }
      std::vector<char*> argv{const_cast<char*>(bin.c_str())};
      for (std::string& a : args_) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      _exit(127);
    }
    return true;
  }

  // Waits until the daemon's socket (and its TCP port, if any) accepts a connection; false if it
  // exited or timed out.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10)) { return ready(timeout).is_ok(); }

  // SIGKILL and reap (no-op when not running).
  void kill9() { kill_and_reap(pid_); }

  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code, 128 + signal if it
  // was killed, or -1 if it would not stop (it is then killed).
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, sig);
    return wait_exit(timeout);
  }

  // SIGTERM, up to `timeout` for a clean exit, then SIGKILL: ok only for exit status 0.
  Status shutdown(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (pid_ <= 0) return Status::ok();
    const int code = stop(SIGTERM, timeout);
    if (code == 0) return Status::ok();
    if (code < 0)
      return Status(Code::kUnavailable, fmt::format("cxlkv-poold did not exit within {} s of SIGTERM; killed",
                                                    std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    return Status(Code::kUnavailable, fmt::format("cxlkv-poold exited with status {:#x}", wait_status_));
  }

  // Waits for the daemon to exit by itself (bad configuration); see stop() for the value.
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited()) return exit_code_;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    kill9();
    return -1;
  }

  bool running() { return pid_ > 0 && !exited(); }
  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_; }
  std::string unix_endpoint() const { return "unix:" + socket_; }
  std::string tcp_endpoint() const { return fmt::format("tcp:127.0.0.1:{}", tcp_port_); }
  // The region of the options form (empty in the raw form: the caller owns its region).
  const cxl::RegionSpec& region() const { return region_; }
  // Everything the daemon logged so far (raw form; the options form logs to the test's stderr).
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  PooldProcess() = default;

  // Polls the socket (and the TCP port) until they accept, the daemon exits, or `timeout`.
  Status ready(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited())
        return Status(Code::kUnavailable, fmt::format("cxlkv-poold exited during start-up with status {:#x}", wait_status_));
      if (accepts_unix() && (tcp_port_ == 0 || accepts_tcp())) return Status::ok();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return Status(Code::kUnavailable, fmt::format("cxlkv-poold did not accept connections within {} s",
                                                  std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
  }
  bool accepts_unix() const {
    const int fd = connect_unix(socket_);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }
  bool accepts_tcp() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(tcp_port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }
  // Reaps the child if it has exited; records its exit code (128 + signal when killed).
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
    wait_status_ = st;
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return true;
  }

  // What runs
  std::string exe_;                 // empty: $CXLKV_POOLD at launch
  std::vector<std::string> args_;
  std::string socket_;
  std::string log_;                 // empty: the child keeps the test's stdout and stderr
  bool die_with_parent_ = false;
  // What the options form owns
  cxl::RegionSpec region_;
  bool owns_region_ = false;
  uint16_t tcp_port_ = 0;
  // The child
  pid_t pid_ = -1;
  int exit_code_ = -1;
  int wait_status_ = 0;
};

}  // namespace cxlkv::testing
