// BulkdProcess: starts the real cxlkv-bulkd binary ($CXLKV_BULKD) on a region by path, on a free
// loopback port it reports through --port-file, and stops it (SIGTERM, then SIGKILL) when
// destroyed. For the baseline's integration tests and benchmarks.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cxlkv/status.h"

namespace cxlkv::testing {

class BulkdProcess {
 public:
  static Result<std::unique_ptr<BulkdProcess>> start(const std::string& backend, const std::string& path) {
    const char* exe = std::getenv("CXLKV_BULKD");
    if (exe == nullptr || *exe == '\0') return Status(Code::kUnavailable, "CXLKV_BULKD is not set: the cxlkv-bulkd binary");
    std::unique_ptr<BulkdProcess> p(new BulkdProcess());
    static int counter = 0;
    p->port_file_ = fmt::format("/tmp/cxlkv-bulkd-{}-{}.port", getpid(), counter++);
    ::unlink(p->port_file_.c_str());
    std::vector<std::string> args = {exe, "--backend", backend, "--path", path, "--listen", "127.0.0.1:0", "--port-file", p->port_file_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    p->pid_ = fork();
    if (p->pid_ < 0) return io_error("fork for cxlkv-bulkd");
    if (p->pid_ == 0) {
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      int status = 0;
      if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
        p->pid_ = -1;
        return Status(Code::kUnavailable, fmt::format("cxlkv-bulkd exited during start-up with status {:#x}", status));
      }
      std::ifstream in(p->port_file_);
      if (in >> p->port_) return p;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Status(Code::kUnavailable, "cxlkv-bulkd did not report its port within 10 s");
  }
  ~BulkdProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 300 && waitpid(pid_, nullptr, WNOHANG) != pid_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    ::unlink(port_file_.c_str());
  }
  std::string address() const { return fmt::format("127.0.0.1:{}", port_); }

 private:
  BulkdProcess() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string port_file_;
};

}  // namespace cxlkv::testing
