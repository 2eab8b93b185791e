// Blocking socket helpers of the baseline: connect/listen by "host:port", and whole-buffer send
// and receive with the error naming the peer and the byte counts. Used by the bulkd server and
// the TCP transport; nothing here knows the message format.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cxlkv/status.h"

namespace cxlkv::baseline {

// Splits "host:port" (host may be empty = all interfaces when listening).
Status parse_host_port(const std::string& text, std::string& host, uint16_t& port);
// Connects a TCP socket (TCP_NODELAY, large buffers). Returns the fd.
Result<int> tcp_connect(const std::string& host_port);
// Listens on host:port (port 0 = any); returns the fd and writes the bound port.
Result<int> tcp_listen(const std::string& host_port, uint16_t* bound_port);
// Sets TCP_NODELAY and 4 MiB socket buffers.
void tune_socket(int fd);
// Sends / receives exactly `bytes`; a closed peer or an error is kIoError / kUnavailable.
Status send_all(int fd, const void* data, size_t bytes, const char* what);
Status recv_all(int fd, void* data, size_t bytes, const char* what);
// Sends all of iov[0..n) / receives into all of iov[0..n) (both modify iov).
Status send_iov(int fd, struct iovec* iov, size_t n, const char* what);
Status recv_iov(int fd, struct iovec* iov, size_t n, const char* what);

}  // namespace cxlkv::baseline
