// Time to first token on a cached prefix, decode side: what must arrive in HBM before the first
// decode step of a request (the whole prefix, or only its indexer keys), over which path, and the
// first step itself (its hot buffer is cold: every top-k entry misses).
// Called by designs.cc. Queueing for admission is not modelled (see docs/simulator.md).
#pragma once

#include "fabric/fabric_model.h"
#include "footprint.h"
#include "step_time.h"

namespace cxlkv::sim {

// What a design must bring into HBM before a request's first step.
struct Arrival {
  std::vector<fabric::Hop> path;  // empty: nothing arrives (prefix already resident)
  bool latent = false;            // the whole latent prefix
  bool indexer = false;           // the whole indexer prefix
  double per_message_s = 0;       // software cost per transfer request (RDMA engines)
};

// Projected seconds for one request's arrival of a `context`-token prefix. Transfers are one
// message per page, layer and stream (how paged pools move a prefix); the software cost of the
// messages and the wire time overlap, the longer one counts.
double arrival_time(const ModelShape& m, const Arrival& a, double context);

struct Ttft {
  double arrival_s = 0;
  double first_step_s = 0;
  double total_s = 0;
};

// arrival + first step: the batch's steady step `steady` plus the extra fetch of the new
// request, whose buffer is cold (all top-k entries miss instead of `fetch`'s misses).
Ttft time_to_first_token(const ModelShape& m, double context, const Arrival& a,
                         const StepTime& steady, const FetchPlan* fetch);

}  // namespace cxlkv::sim
