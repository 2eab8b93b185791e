#include "etcd_watch.h"

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "etcd_client.h"

namespace cxlkv::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

struct EtcdWatch::State {
  asio::io_context io;
  std::atomic<bool> stopped{false};
};

EtcdWatch::EtcdWatch(std::string host, uint16_t port, std::chrono::milliseconds connect_timeout)
    : host_(std::move(host)), port_(port), connect_timeout_(connect_timeout), state_(std::make_unique<State>()) {}

EtcdWatch::~EtcdWatch() = default;

void EtcdWatch::stop() {
  state_->stopped.store(true, std::memory_order_release);
  state_->io.stop();
}

Status EtcdWatch::run(std::string_view prefix, const std::function<void()>& on_change) {
  if (state_->stopped.load(std::memory_order_acquire)) return Status::ok();
  const std::string where = fmt::format("etcd at {}:{}: watch {}", host_, port_, prefix);
  asio::io_context& io = state_->io;
  beast::tcp_stream stream(io);
  asio::ip::tcp::resolver resolver(io);
  beast::flat_buffer buffer;
  http::request<http::string_body> request(http::verb::post, "/v3/watch", 11);
  request.set(http::field::host, host_);
  request.set(http::field::content_type, "application/json");
  request.body() = json{{"create_request", {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}}}}.dump();
  request.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);  // the stream has no end; its lines go to the callback below

  Status outcome;  // the first failure; ok while the watch lives
  auto fail = [&](Status st) {
    if (outcome.is_ok()) outcome = std::move(st);
  };
  bool created = false;
  std::string pending;  // bytes of a line not yet complete
  // Each line is one WatchResponse ({"result": {...}}) or an error ({"error": {...}}).
  auto take_line = [&](std::string_view line) -> bool {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return fail(Status(Code::kProtocol, fmt::format("{}: not JSON: {}", where, line.substr(0, 200)))), false;
    if (j.contains("error"))
      return fail(Status(Code::kUnavailable, fmt::format("{}: {}", where, j["error"].dump()))), false;
    const json& result = j.contains("result") ? j["result"] : j;
    if (result.value("canceled", false))
      return fail(Status(Code::kUnavailable, fmt::format("{}: canceled by etcd: {}", where,
                                                         result.value("cancel_reason", std::string("no reason"))))), false;
    if (!created && result.value("created", false)) {
      created = true;
      stream.expires_never();  // created: from now on the stream waits for events for as long as it takes
      on_change();
    }
    if (result.contains("events")) on_change();
    return true;
  };
  // The parser keeps a reference to the callback: it must outlive every read.
  auto on_chunk = [&](std::uint64_t, beast::string_view body, beast::error_code& ec) -> std::size_t {
    pending.append(body.data(), body.size());
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string_view line(pending.data() + start, nl - start);
      if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      if (!take_line(line)) {
        ec = http::error::bad_chunk;  // ends the read; `outcome` says why
        return body.size();
      }
    }
    pending.erase(0, start);
    return body.size();
  };
  parser.on_chunk_body(on_chunk);

  std::function<void()> read_more = [&] {
    http::async_read_some(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
      if (ec) return fail(Status(Code::kUnavailable, fmt::format("{}: {}", where, ec.message())));
      if (parser.is_done()) return fail(Status(Code::kUnavailable, fmt::format("{}: etcd closed the stream", where)));
      read_more();
    });
  };
  stream.expires_after(connect_timeout_);
  resolver.async_resolve(host_, std::to_string(port_), [&](beast::error_code ec, asio::ip::tcp::resolver::results_type results) {
    if (ec) return fail(Status(Code::kUnavailable, fmt::format("{}: resolve: {}", where, ec.message())));
    stream.async_connect(results, [&](beast::error_code ec, const asio::ip::tcp::endpoint&) {
      if (ec) return fail(Status(Code::kUnavailable, fmt::format("{}: connect: {}", where, ec.message())));
      http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
        if (ec) return fail(Status(Code::kUnavailable, fmt::format("{}: send: {}", where, ec.message())));
        http::async_read_header(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
          if (ec) return fail(Status(Code::kUnavailable, fmt::format("{}: {}", where, ec.message())));
          if (parser.get().result() != http::status::ok)
            return fail(Status(Code::kUnavailable, fmt::format("{}: HTTP {}", where, parser.get().result_int())));
          if (!parser.chunked())
            return fail(Status(Code::kProtocol, fmt::format("{}: the reply is not a stream (not chunked)", where)));
          read_more();
        });
      });
    });
  });
  try {
    io.run();
  } catch (const std::exception& e) {  // on_change or a JSON accessor threw: the watch ends with it
    fail(Status(Code::kProtocol, fmt::format("{}: {}", where, e.what())));
  }
  if (state_->stopped.load(std::memory_order_acquire)) return Status::ok();
  if (outcome.is_ok()) return Status(Code::kUnavailable, fmt::format("{}: ended", where));
  return outcome;
}

}  // namespace cxlkv::cluster
