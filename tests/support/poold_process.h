// Test support: runs the real cxlkv-poold binary (path in $CXLKV_POOLD) as a child process and
// always ends it: the destructor kills and reaps it, and the child dies with the test process
// (PR_SET_PDEATHSIG), so no daemon outlives a test, even one that fails. Used by tests/pool and
// any integration test; never by production code.
#pragma once

#include <fcntl.h>
#include <poll.h>
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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cxlkv::test {

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

class PooldProcess {
 public:
  // `args` follow the binary's path; its log (stderr) goes to `log_path`.
  PooldProcess(std::vector<std::string> args, std::string socket_path)
      : args_(std::move(args)), socket_(std::move(socket_path)), log_(socket_ + ".log") {}
  ~PooldProcess() {
    kill9();
    ::unlink(log_.c_str());
    ::unlink(socket_.c_str());  // a killed daemon leaves its socket file
  }
  PooldProcess(const PooldProcess&) = delete;
  PooldProcess& operator=(const PooldProcess&) = delete;

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
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (log >= 0) ::dup2(log, STDERR_FILENO), ::dup2(log, STDOUT_FILENO);
      const std::string bin = binary();
      std::vector<char*> argv{const_cast<char*>(bin.c_str())};
      for (std::string& a : args_) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      _exit(127);
    }
    return true;
  }

  // Waits until the daemon's socket accepts a connection; false if it exited or timed out.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited()) return false;
      const int fd = connect_unix(socket_);
      if (fd >= 0) {
        ::close(fd);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return false;
  }

  // SIGKILL and reap (no-op when not running).
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  // Sends `sig` and waits up to `timeout` for the exit; returns the exit code, 128 + signal if it
  // was killed, or -1 if it would not stop (it is then killed).
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, sig);
    return wait_exit(timeout);
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
  // Everything the daemon logged so far.
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return false;
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return true;
  }

  std::vector<std::string> args_;
  std::string socket_;
  std::string log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace cxlkv::test
