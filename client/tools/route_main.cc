// cxlkv-route: asks the cluster's prefix directory (include/cxlkv/route.h) how much of a prompt the
// memory nodes hold, where, and which decode worker is closest to it. For operators and for
// schedulers written in shell; programs call cxlkv::route (C++), cxlkv_route (C) or cxlkv.route.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "cxlkv/page_key.h"
#include "cxlkv/route.h"

namespace {

using namespace cxlkv;

int fail(const std::string& message) {
  std::fprintf(stderr, "cxlkv-route: %s\n", message.c_str());
  return 2;
}

// Token ids separated by spaces, commas or newlines, from a file or "-" (standard input).
Result<std::vector<int32_t>> read_tokens(const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) return Status(Code::kNotFound, fmt::format("--tokens {}: cannot open it", path));
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<int32_t> tokens;
  std::string word;
  while (in >> word) {
    std::stringstream parts(word);
    std::string part;
    while (std::getline(parts, part, ',')) {
      if (part.empty()) continue;
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(part, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != part.size() || v < INT32_MIN || v > INT32_MAX)
        return Status(Code::kInvalidArgument, fmt::format("--tokens {}: '{}' is not a token id (an int32)", path, part));
      tokens.push_back(int32_t(v));
    }
  }
  return tokens;
}

// [workers.NAME] tables of node id = affinity weight (docs/cluster.md, Prefix directory).
Result<std::vector<RouteWorker>> read_workers(const std::string& path) {
  toml::table config;
  try {
    config = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kInvalidArgument, fmt::format("--workers {}: {}", path, e.description()));
  }
  std::vector<RouteWorker> workers;
  const toml::table* table = config["workers"].as_table();
  if (!table) return Status(Code::kInvalidArgument, fmt::format("--workers {}: no [workers.NAME] table", path));
  for (const auto& [name, value] : *table) {
    const toml::table* nodes = value.as_table();
    if (!nodes)
      return Status(Code::kInvalidArgument, fmt::format("--workers {}: workers.{} is not a table of node = weight",
                                                        path, name.str()));
    RouteWorker w{std::string(name.str()), {}};
    for (const auto& [node, weight] : *nodes) {
      auto v = weight.value<double>();
      if (!v || !std::isfinite(*v) || *v < 0)
        return Status(Code::kInvalidArgument, fmt::format("--workers {}: workers.{}.{} must be a finite number >= 0", path,
                                                          name.str(), node.str()));
      w.node_affinity[std::string(node.str())] = *v;
    }
    workers.push_back(std::move(w));
  }
  return workers;
}

void print_answer(const RouteAnswer& a, uint32_t page_tokens) {
  std::printf("prompt: %u whole pages of %u tokens; cached: %u pages (%.0f %%)\n", a.prefix_pages, page_tokens,
              a.cached_pages, a.prefix_pages ? 100.0 * a.cached_pages / a.prefix_pages : 0.0);
  for (const auto& [node, pages] : a.node_pages) std::printf("  node %s: %u pages\n", node.c_str(), pages);
  if (!a.workers.empty()) std::printf("workers, best first:\n");
  for (const RankedWorker& w : a.workers)
    std::printf("  %s: score %.1f, %u cached pages on its nodes\n", w.name.c_str(), w.score, w.local_pages);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-route: how many leading pages of a prompt a cxlkv cluster holds, on which memory nodes, and "
               "the decode workers ranked by their affinity to those nodes. Reads the prefix directory the daemons "
               "publish in etcd (at most a few seconds old: an answer is advice, a lookup is exact)."};
  std::string cluster, tenant, model, tokens_path, workers_path;
  uint32_t page_tokens = 64;
  int timeout_ms = 2000;
  bool json = false;
  app.add_option("--cluster", cluster, "the cluster: etcd://HOST:PORT/NAME")->required();
  app.add_option("--tenant", tenant, "the tenant whose namespace is asked about")->required();
  app.add_option("--model", model, "the model (namespace = tenant, model)")->required();
  app.add_option("--tokens", tokens_path, "a file of token ids (spaces, commas or newlines), or - for stdin")
      ->required();
  app.add_option("--page-tokens", page_tokens, "tokens per page of the pool's layout")
      ->default_val(64)->check(CLI::Range(1u, 1u << 20));
  app.add_option("--workers", workers_path,
                 "a TOML file of [workers.NAME] tables, each node id = affinity weight (e.g. mem-a = 1.0)")
      ->check(CLI::ExistingFile);
  app.add_option("--timeout-ms", timeout_ms, "per etcd request")->default_val(2000)->check(CLI::PositiveNumber);
  app.add_flag("--json", json, "print the answer as JSON (the C API's cxlkv_route format)");
  CLI11_PARSE(app, argc, argv);

  auto tokens = read_tokens(tokens_path);
  if (!tokens) return fail(tokens.status().message());
  std::vector<RouteWorker> workers;
  if (!workers_path.empty()) {
    auto w = read_workers(workers_path);
    if (!w) return fail(w.status().message());
    workers = std::move(*w);
  }
  const auto keys = page_keys(*tokens, page_tokens, namespace_id(tenant, model));
  auto answer = route(cluster, namespace_id(tenant, model), keys, workers, std::chrono::milliseconds(timeout_ms));
  if (!answer) return fail(answer.status().to_string());
  if (json) std::printf("%s\n", answer->to_json().c_str());
  else print_answer(*answer, page_tokens);
  return 0;
}
