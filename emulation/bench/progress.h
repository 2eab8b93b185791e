// A one-line progress bar on stderr for cxlkv-bench's long runs, drawn only when stderr is a
// terminal (logs and pipes get nothing). Called between units of work, never in a timed region.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

namespace cxlkv::bench {

class Progress {
 public:
  explicit Progress(int total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  ~Progress() { finish(); }
  // Marks one more unit done and shows what comes next.
  void advance(const std::string& next) {
    ++done_;
    draw(next);
  }
  void show(const std::string& what) { draw(what); }
  void finish() {
    if (tty_ && drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  void draw(const std::string& what) {
    if (!tty_) return;
    constexpr int kWidth = 30;
    const int filled = total_ > 0 ? done_ * kWidth / total_ : 0;
    std::string bar(size_t(filled), '#');
    bar.append(size_t(kWidth - filled), '.');
    std::fprintf(stderr, "\r[%s] %3d/%d %-48.48s", bar.c_str(), done_, total_, what.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  int total_, done_ = 0;
  bool tty_, drawn_ = false;
};

}  // namespace cxlkv::bench
