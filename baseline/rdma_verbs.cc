// ibverbs device, queue pair and connection helpers (see rdma_verbs.h).
#include "rdma_verbs.h"

#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>

namespace cxlkv::baseline::verbs {

Device::~Device() {
  if (pd != nullptr) ibv_dealloc_pd(pd);
  if (context != nullptr) ibv_close_device(context);
}

QueuePair::~QueuePair() {
  if (qp != nullptr) ibv_destroy_qp(qp);
  if (cq != nullptr) ibv_destroy_cq(cq);
}

namespace {

// True if the GID is an IPv4-mapped IPv6 address (::ffff:a.b.c.d), RoCE v2's usual choice.
bool ipv4_mapped(const ibv_gid& g) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(g.raw, prefix, sizeof prefix) == 0;
}

}  // namespace

Result<std::unique_ptr<Device>> open_device(const RdmaOptions& options) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr || n == 0) {
    if (list != nullptr) ibv_free_device_list(list);
    return Status(Code::kUnavailable, "rdma: no RDMA device (load rdma_rxe and add one with 'rdma link add rxe0 type rxe netdev IF')");
  }
  ibv_device* chosen = nullptr;
  std::string names;
  for (int i = 0; i < n; ++i) {
    const char* name = ibv_get_device_name(list[i]);
    names += std::string(names.empty() ? "" : ", ") + name;
    if (options.device.empty() ? chosen == nullptr : options.device == name) chosen = list[i];
  }
  if (chosen == nullptr) {
    ibv_free_device_list(list);
    return Status(Code::kNotFound, fmt::format("rdma: device '{}' not found (have: {})", options.device, names));
  }
  auto d = std::make_unique<Device>();
  d->name = ibv_get_device_name(chosen);
  d->context = ibv_open_device(chosen);
  ibv_free_device_list(list);
  if (d->context == nullptr) return io_error("rdma: open device " + d->name);
  d->port = options.port;
  if (ibv_query_port(d->context, d->port, &d->port_attr) != 0)
    return io_error(fmt::format("rdma: query {} port {}", d->name, d->port));
  if (d->port_attr.state != IBV_PORT_ACTIVE)
    return Status(Code::kUnavailable, fmt::format("rdma: {} port {} is not active (state {})", d->name, d->port, int(d->port_attr.state)));
  if (options.gid_index >= 0) {
    d->gid_index = uint8_t(options.gid_index);
    if (ibv_query_gid(d->context, d->port, options.gid_index, &d->gid) != 0)
      return io_error(fmt::format("rdma: query {} gid {}", d->name, options.gid_index));
  } else {
    d->gid_index = 0;
    ibv_query_gid(d->context, d->port, 0, &d->gid);
    for (int i = 0; i < d->port_attr.gid_tbl_len && i < 16; ++i) {
      ibv_gid g{};
      if (ibv_query_gid(d->context, d->port, i, &g) == 0 && ipv4_mapped(g)) {
        d->gid = g;
        d->gid_index = uint8_t(i);
        break;
      }
    }
  }
  d->pd = ibv_alloc_pd(d->context);
  if (d->pd == nullptr) return io_error("rdma: allocate a protection domain on " + d->name);
  return d;
}

Result<std::unique_ptr<QueuePair>> create_qp(Device& device, uint32_t depth) {
  auto q = std::make_unique<QueuePair>();
  q->cq = ibv_create_cq(device.context, int(depth), nullptr, nullptr, 0);
  if (q->cq == nullptr) return io_error(fmt::format("rdma: create a CQ of {} on {}", depth, device.name));
  ibv_qp_init_attr init{};
  init.send_cq = q->cq;
  init.recv_cq = q->cq;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = depth;
  init.cap.max_recv_wr = 1;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  q->qp = ibv_create_qp(device.pd, &init);
  if (q->qp == nullptr) return io_error(fmt::format("rdma: create an RC QP of depth {} on {}", depth, device.name));
  q->psn = std::random_device{}() & 0xffffff;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = device.port;
  a.qp_access_flags = IBV_ACCESS_REMOTE_READ;
  if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0)
    return io_error("rdma: QP to INIT on " + device.name);
  return q;
}

wire::RdmaEndpoint endpoint_of(const Device& device, const QueuePair& qp) {
  wire::RdmaEndpoint e{};
  e.qpn = qp.qp->qp_num;
  e.psn = qp.psn;
  e.lid = device.port_attr.lid;
  e.port = device.port;
  e.gid_index = device.gid_index;
  e.mtu = uint32_t(device.port_attr.active_mtu);
  std::memcpy(e.gid, device.gid.raw, sizeof e.gid);
  return e;
}

Status connect_qp(Device& device, QueuePair& qp, const wire::RdmaEndpoint& remote, uint8_t rd_atomic) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = ibv_mtu(std::min<uint32_t>(uint32_t(device.port_attr.active_mtu), remote.mtu));
  a.dest_qp_num = remote.qpn;
  a.rq_psn = remote.psn;
  a.max_dest_rd_atomic = rd_atomic;
  a.min_rnr_timer = 12;
  a.ah_attr.port_num = device.port;
  a.ah_attr.dlid = remote.lid;
  if (remote.lid == 0 || device.port_attr.link_layer == IBV_LINK_LAYER_ETHERNET) {  // RoCE: route by GID
    a.ah_attr.is_global = 1;
    std::memcpy(a.ah_attr.grh.dgid.raw, remote.gid, sizeof remote.gid);
    a.ah_attr.grh.sgid_index = device.gid_index;
    a.ah_attr.grh.hop_limit = 64;
  }
  if (ibv_modify_qp(qp.qp, &a,
                    IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                        IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0)
    return io_error(fmt::format("rdma: QP {} to RTR (remote QP {}, mtu {})", qp.qp->qp_num, remote.qpn, int(a.path_mtu)));
  ibv_qp_attr r{};
  r.qp_state = IBV_QPS_RTS;
  r.timeout = 14;
  r.retry_cnt = 7;
  r.rnr_retry = 7;
  r.sq_psn = qp.psn;
  r.max_rd_atomic = rd_atomic;
  if (ibv_modify_qp(qp.qp, &r,
                    IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                        IBV_QP_MAX_QP_RD_ATOMIC) != 0)
    return io_error(fmt::format("rdma: QP {} to RTS", qp.qp->qp_num));
  return Status::ok();
}

}  // namespace cxlkv::baseline::verbs
