// The HTTP side of the metrics (metrics_server.h).
#include "metrics_server.h"

// GCC 12 sees a false "maybe uninitialized" inside Beast's parser (boost 1.74); not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace cxlkv::pool {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// Reads one request, answers it, closes.
class Scrape : public std::enable_shared_from_this<Scrape> {
 public:
  Scrape(asio::ip::tcp::socket socket, Metrics& metrics, const MetricsServer::PartitionsFn& partitions,
         std::shared_ptr<MetricsServer::Readiness> ready)
      : socket_(std::move(socket)), metrics_(metrics), partitions_(partitions), ready_(std::move(ready)) {}

  void start() {
    http::async_read(socket_, buffer_, request_, [self = shared_from_this()](error_code ec, size_t) {
      if (!ec) self->respond();
    });
  }

 private:
  void respond() {
    response_.version(request_.version());
    response_.keep_alive(false);
    const bool get = request_.method() == http::verb::get;
    response_.set(http::field::content_type, "text/plain");
    if (get && request_.target() == "/metrics") {
      response_.result(http::status::ok);
      response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      response_.body() = metrics_.render(partitions_());
    } else if (get && request_.target() == "/healthz") {
      response_.result(http::status::ok);
      response_.body() = "ok\n";
    } else if (get && request_.target() == "/readyz") {
      response_.result(ready_->ready ? http::status::ok : http::status::service_unavailable);
      response_.body() = ready_->ready ? "ready\n" : "not ready: " + ready_->why_not + "\n";
    } else {
      response_.result(http::status::not_found);
      response_.body() = "served here: GET /metrics, /healthz, /readyz\n";
    }
    response_.prepare_payload();
    http::async_write(socket_, response_, [self = shared_from_this()](error_code, size_t) {
      error_code ignored;
      self->socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    });
  }

  asio::ip::tcp::socket socket_;
  Metrics& metrics_;
  const MetricsServer::PartitionsFn& partitions_;  // the server's, which outlives its scrapes (one thread)
  std::shared_ptr<MetricsServer::Readiness> ready_;
  beast::flat_buffer buffer_{8192};
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, Metrics& metrics, PartitionsFn partitions)
    : io_(io), metrics_(metrics), partitions_(std::move(partitions)) {}

Result<uint16_t> MetricsServer::start(const std::string& bind, uint16_t port) {
  error_code ec;
  const asio::ip::address ip = asio::ip::make_address(bind, ec);
  if (ec) return Status(Code::kInvalidArgument, fmt::format("metrics bind address '{}': {}", bind, ec.message()));
  const asio::ip::tcp::endpoint ep(ip, port);
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIoError, fmt::format("metrics {}:{}: {}", bind, port, ec.message()));
  accept();
  return acceptor_->local_endpoint().port();
}

void MetricsServer::accept() {
  acceptor_->async_accept([this](error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) return;
    if (!ec) std::make_shared<Scrape>(std::move(socket), metrics_, partitions_, ready_)->start();
    accept();
  });
}

void MetricsServer::stop() {
  error_code ec;
  if (acceptor_) acceptor_->close(ec);
  acceptor_.reset();
}

}  // namespace cxlkv::pool
