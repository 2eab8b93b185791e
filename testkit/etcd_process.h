// EtcdProcess: a real etcd (Debian's etcd-server) for the cluster's tests, on loopback ports of
// its own with a temporary data directory, always ended with the test: no etcd outlives it. The
// binary is $CXLKV_ETCD, else `etcd` on PATH (scripts/install-deps installs etcd-server).
// For tests and benchmarks only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cxlkv/status.h"
#include "etcd_client.h"
#include "poold_process.h"

namespace cxlkv::testing {

class EtcdProcess {
 public:
  // Starts etcd on two free loopback ports with a new data directory under /tmp; ready (it
  // answers a range request) within 20 s, or an error naming why.
  static Result<std::unique_ptr<EtcdProcess>> start() {
    std::unique_ptr<EtcdProcess> e(new EtcdProcess());
    auto client = free_tcp_port();
    if (!client) return client.status();
    auto peer = free_tcp_port();
    if (!peer) return peer.status();
    e->client_port_ = *client, e->peer_port_ = *peer;
    e->dir_ = unique_name("etcd");
    std::error_code ec;
    std::filesystem::create_directories(e->dir_, ec);
    if (ec) return Status(Code::kIoError, fmt::format("creating {}: {}", e->dir_, ec.message()));
    if (Status st = e->launch(); !st) return st;
    return e;
  }

  ~EtcdProcess() {
    kill9();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // "etcd://127.0.0.1:PORT/<cluster>".
  std::string url(const std::string& cluster) const { return fmt::format("etcd://127.0.0.1:{}/{}", client_port_, cluster); }
  uint16_t client_port() const { return client_port_; }
  cluster::EtcdClient client() const { return cluster::EtcdClient("127.0.0.1", client_port_); }

  // SIGKILL and reap: etcd gone at once, its data directory kept.
  void kill9() { kill_and_reap(pid_); }
  // Starts it again on the same ports; with `wipe`, over an empty data directory (etcd lost
  // everything: leases and keys).
  Status restart(bool wipe = false) {
    kill9();
    if (wipe) {
      std::error_code ec;
      std::filesystem::remove_all(dir_ + "/data", ec);
    }
    return launch();
  }
  std::string log() const {
    std::ifstream in(dir_ + "/etcd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  EtcdProcess() = default;

  static std::string binary() {
    const char* p = std::getenv("CXLKV_ETCD");
    return p && *p ? p : "etcd";
  }

  Status launch() {
    const std::string client = fmt::format("http://127.0.0.1:{}", client_port_);
    const std::string peer = fmt::format("http://127.0.0.1:{}", peer_port_);
    std::vector<std::string> args{binary(), "--name", "test", "--data-dir", dir_ + "/data",
                                  "--listen-client-urls", client, "--advertise-client-urls", client,
                                  "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", "test=" + peer, "--logger", "zap",
                                  "--log-outputs", dir_ + "/etcd.log"};
    pid_ = ::fork();
    if (pid_ < 0) return io_error("fork for etcd");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, STDOUT_FILENO), ::dup2(null, STDERR_FILENO);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    cluster::EtcdClient probe("127.0.0.1", client_port_, std::chrono::milliseconds(500));
    Status last;
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return Status(Code::kUnavailable,
                      fmt::format("etcd ({}) exited at start with status {:#x}{}", binary(), st,
                                  WIFEXITED(st) && WEXITSTATUS(st) == 127
                                      ? ": not found (scripts/install-deps installs etcd-server)"
                                      : "; its log: " + dir_ + "/etcd.log"));
      }
      auto answer = probe.get("/cxlkv-test-probe");
      if (answer) return Status::ok();
      last = answer.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill9();
    return Status(Code::kUnavailable, fmt::format("etcd did not answer within 20 s: {}", last.message()));
  }

  std::string dir_;
  uint16_t client_port_ = 0, peer_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace cxlkv::testing
