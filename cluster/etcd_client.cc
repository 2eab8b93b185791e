#include "etcd_client.h"

#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cxlkv::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

// The largest answer read from etcd: a namespace's prefix directory at 1e6 cached prefixes is
// about 40 MB of summaries, 53 MB as etcd's base64 JSON (docs/cluster.md, Scale).
constexpr uint64_t kMaxResponseBytes = uint64_t{256} << 20;

std::string ClusterUrl::to_string() const { return fmt::format("etcd://{}:{}/{}", host, port, name); }

Result<ClusterUrl> parse_cluster_url(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status(Code::kInvalidArgument,
                  fmt::format("cluster '{}': {} (expected etcd://HOST:PORT/NAME)", text, why));
  };
  constexpr std::string_view kScheme = "etcd://";
  if (!text.starts_with(kScheme)) return bad("not an etcd:// URL");
  std::string_view rest = text.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("no cluster name after the address");
  const std::string_view address = rest.substr(0, slash);
  const std::string_view name = rest.substr(slash + 1);
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad("no HOST:PORT");
  ClusterUrl url;
  url.host = std::string(address.substr(0, colon));
  const std::string_view port = address.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
    return bad(fmt::format("port '{}' is not a number in 1..65535", port));
  url.port = uint16_t(value);
  if (name.empty() || name.size() > 64) return bad("the cluster name must have 1 to 64 characters");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return bad(fmt::format("the cluster name has '{}': only letters, digits, '.', '_' and '-'", c));
  url.name = std::string(name);
  return url;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), int(bytes.size()));
  out.resize(size_t(n));
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return Status(Code::kProtocol, fmt::format("base64 of {} characters (not a multiple of 4)", text.size()));
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), int(text.size()));
  if (n < 0) return Status(Code::kProtocol, "not base64: " + std::string(text.substr(0, 64)));
  // EVP_DecodeBlock counts the padding's zero bytes too.
  size_t size = size_t(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --size;
  out.resize(size);
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = char(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

EtcdClient::EtcdClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout) {}

std::string EtcdClient::where() const { return fmt::format("{}:{}", host_, port_); }

Result<std::string> EtcdClient::post(std::string_view path, const std::string& json_body) {
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(timeout_);
    asio::ip::tcp::resolver resolver(io);
    stream.connect(resolver.resolve(host_, std::to_string(port_)));
    http::request<http::string_body> req(http::verb::post, std::string(path), 11);
    req.set(http::field::host, host_);
    req.set(http::field::content_type, "application/json");
    req.body() = json_body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBytes);  // Beast's default (8 MB) is below a large prefix directory
    http::read(stream, buffer, parser);
    http::response<http::string_body> res = parser.release();
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    if (res.result() != http::status::ok)
      return Status(Code::kUnavailable, fmt::format("etcd at {}: {} answered HTTP {}: {}", where(), path,
                                                    res.result_int(), res.body().substr(0, 200)));
    return std::move(res.body());
  } catch (const std::exception& e) {
    return Status(Code::kUnavailable, fmt::format("etcd at {}: {}: {}", where(), path, e.what()));
  }
}

namespace {

// etcd's JSON writes 64-bit integers as strings and leaves out fields that are zero.
// A field of another type or a number out of range counts as absent (0): callers treat 0 as
// "no lease" / "no TTL", an error they report.
int64_t int_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) return 0;
  const std::string& text = it->get_ref<const std::string&>();
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() ? value : 0;
}

Result<json> parse(const Result<std::string>& body, std::string_view what) {
  if (!body) return body.status();
  try {
    json j = json::parse(body.value());
    if (!j.is_object()) throw std::runtime_error("not an object");
    return j;
  } catch (const std::exception& e) {
    return Status(Code::kProtocol, fmt::format("etcd {}: not JSON ({}): {}", what, e.what(), body->substr(0, 200)));
  }
}

Result<std::vector<EtcdKv>> decode_kvs(const json& j) try {
  std::vector<EtcdKv> out;
  auto it = j.find("kvs");
  if (it == j.end()) return out;
  for (const json& kv : *it) {
    auto key = base64_decode(kv.value("key", ""));
    if (!key) return key.status();
    auto value = base64_decode(kv.value("value", ""));
    if (!value) return value.status();
    out.push_back({std::move(*key), std::move(*value), int_field(kv, "lease"), int_field(kv, "mod_revision")});
  }
  return out;
} catch (const std::exception& e) {
  return Status(Code::kProtocol, fmt::format("etcd: a key-value of an unexpected shape ({}): {}", e.what(),
                                             j.dump().substr(0, 200)));
}

}  // namespace

Result<int64_t> EtcdClient::grant_lease(int64_t ttl_s) {
  auto j = parse(post("/v3/lease/grant", json{{"TTL", ttl_s}}.dump()), "lease grant");
  if (!j) return j.status();
  if (j->contains("error") && !(*j)["error"].empty())
    return Status(Code::kUnavailable, fmt::format("etcd at {}: lease grant: {}", where(), (*j)["error"].dump()));
  const int64_t id = int_field(*j, "ID");
  if (id == 0) return Status(Code::kProtocol, fmt::format("etcd at {}: lease grant answered no ID", where()));
  return id;
}

Result<int64_t> EtcdClient::keep_alive(int64_t lease) {
  auto j = parse(post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump()), "lease keepalive");
  if (!j) return j.status();
  // The gateway streams; one request gives one {"result": ...}. No TTL: the lease is gone.
  // An error from the gateway is etcd's own failure (busy, no leader), not an expired lease,
  // unless it says the lease is not found.
  if (j->contains("error")) {
    const std::string error = (*j)["error"].dump();
    if (error.find("lease not found") != std::string::npos)
      return Status(Code::kNotFound, fmt::format("etcd at {}: lease {:x} has expired", where(), lease));
    return Status(Code::kUnavailable, fmt::format("etcd at {}: lease keepalive: {}", where(), error));
  }
  const json& result = j->contains("result") ? (*j)["result"] : *j;
  const int64_t ttl = int_field(result, "TTL");
  if (ttl <= 0) return Status(Code::kNotFound, fmt::format("etcd at {}: lease {:x} has expired", where(), lease));
  return ttl;
}

Status EtcdClient::revoke_lease(int64_t lease) {
  auto j = parse(post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump()), "lease revoke");
  return j ? Status::ok() : j.status();
}

Status EtcdClient::put(std::string_view key, std::string_view value, int64_t lease) {
  json body{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) body["lease"] = std::to_string(lease);
  auto j = parse(post("/v3/kv/put", body.dump()), "put");
  if (!j) return j.status();
  if (j->contains("error"))
    return Status(Code::kUnavailable, fmt::format("etcd at {}: put {}: {}", where(), key, (*j)["error"].dump()));
  return Status::ok();
}

Result<std::string> EtcdClient::put_if_absent(std::string_view key, std::string_view value) try {
  const std::string k = base64_encode(key);
  const json body{
      {"compare", json::array({{{"key", k}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}})},
      {"success", json::array({{{"requestPut", {{"key", k}, {"value", base64_encode(value)}}}}})},
      {"failure", json::array({{{"requestRange", {{"key", k}}}}})}};
  auto j = parse(post("/v3/kv/txn", body.dump()), "txn");
  if (!j) return j.status();
  if (j->value("succeeded", false)) return std::string(value);
  for (const json& r : j->value("responses", json::array()))
    if (r.contains("response_range")) {
      auto kvs = decode_kvs(r["response_range"]);
      if (!kvs) return kvs.status();
      if (!kvs->empty()) return std::move(kvs->front().value);
    }
  return Status(Code::kProtocol, fmt::format("etcd at {}: txn on {} neither created nor read it", where(), key));
} catch (const std::exception& e) {
  return Status(Code::kProtocol, fmt::format("etcd at {}: txn on {}: an answer of an unexpected shape ({})", where(),
                                             key, e.what()));
}

Result<std::optional<EtcdKv>> EtcdClient::get(std::string_view key) {
  auto j = parse(post("/v3/kv/range", json{{"key", base64_encode(key)}}.dump()), "range");
  if (!j) return j.status();
  auto kvs = decode_kvs(*j);
  if (!kvs) return kvs.status();
  if (kvs->empty()) return std::optional<EtcdKv>();
  return std::optional<EtcdKv>(std::move(kvs->front()));
}

Result<std::vector<EtcdKv>> EtcdClient::get_prefix(std::string_view prefix) {
  const json body{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
  auto j = parse(post("/v3/kv/range", body.dump()), "range");
  if (!j) return j.status();
  return decode_kvs(*j);
}

Status EtcdClient::erase(std::string_view key) {
  auto j = parse(post("/v3/kv/deleterange", json{{"key", base64_encode(key)}}.dump()), "delete");
  return j ? Status::ok() : j.status();
}

}  // namespace cxlkv::cluster
