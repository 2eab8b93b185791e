// AdminClient (include/cxlkv/admin.h): an admin-role session over the client's Session.
#include "cxlkv/admin.h"

#include <fmt/format.h>

#include "session.h"

namespace cxlkv {

AdminClient::AdminClient(std::shared_ptr<detail::Session> session) : session_(std::move(session)) {}
AdminClient::~AdminClient() = default;

Result<std::unique_ptr<AdminClient>> AdminClient::connect(const ClientOptions& options) {
  if (options.endpoint.starts_with("etcd://"))
    return Status(Code::kInvalidArgument, fmt::format("admin: endpoint {} is a cluster; give one daemon's (unix:, tcp:, "
                                                      "tls:)", options.endpoint));
  ClientOptions o = options;
  o.admin = true;
  o.read_only = false;
  if (o.model.empty()) o.model = "admin";
  auto session = detail::Session::open(o);
  if (!session) return session.status();
  return std::unique_ptr<AdminClient>(new AdminClient(std::move(*session)));
}

Result<std::vector<PartitionStatus>> AdminClient::partitions() { return session_->partitions(); }

Result<PoolStats> AdminClient::stats() { return session_->stats(); }

Result<DrainStatus> AdminClient::drain(bool draining) { return session_->drain(draining); }

Result<DrainStatus> AdminClient::drain_status() { return session_->drain(false, /*ask=*/true); }

Result<ReloadReport> AdminClient::reload() { return session_->reload(); }

Result<PartitionRemoval> AdminClient::remove_partition(const std::string& name, const std::string& into) {
  if (name.empty() || into.empty())
    return Status(Code::kInvalidArgument, fmt::format("remove_partition: partition '{}' into '{}': both must be named",
                                                      name, into));
  return session_->remove_partition(name, into);
}

}  // namespace cxlkv
