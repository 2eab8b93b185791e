// The fabric model: named hardware profiles (GPUs, CXL devices, RDMA NICs, PCIe paths, DRAM)
// loaded from profiles.toml, and the projection of counted operations (bytes, cache lines,
// messages, round trips) into time on a profile or on a path of several hops.
// Called by the decode-stage simulator (emulation/sim/) and by benchmarks that project measured
// operation counts onto target hardware. It never measures anything and holds no global state.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"

namespace cxlkv::fabric {

using cxlkv::emu::Result;

// A GPU: HBM capacity and bandwidth, dense tensor-core rates.
struct GpuProfile {
  std::string name;
  std::string description;
  double hbm_gb = 0;       // capacity, 1e9 bytes
  double hbm_gbps = 0;     // bandwidth, 1e9 bytes/s
  double bf16_tflops = 0;  // dense
  double fp8_tflops = 0;   // dense
};

enum class LinkKind { kCxl, kRdma, kPcie, kDram };

// Returns "cxl", "rdma", "pcie" or "dram".
const char* to_string(LinkKind kind);

// A link or memory device data travels over. Optional rates are 0 when the profile has none.
struct LinkProfile {
  std::string name;
  std::string description;
  LinkKind kind = LinkKind::kDram;
  double bandwidth_gbps = 0;    // bulk (sequential) rate, 1e9 bytes/s
  double gather_gbps = 0;       // rate of a scattered gather of small entries; 0: same as bulk
  double latency_ns = 0;        // one dependent round trip
  double line_bytes = 0;        // transfer granule (CXL: 64 B); 0: byte granular
  double message_rate_mps = 0;  // messages per second / 1e6 (RDMA); 0: not limiting
};

// All profiles of one file, by name.
struct Profiles {
  std::string origin;  // file path (or "<string>") they came from
  std::map<std::string, GpuProfile> gpus;
  std::map<std::string, LinkProfile> links;

  // Returns the GPU profile `name`, or an error listing the known names.
  Result<GpuProfile> gpu(std::string_view name) const;
  // Returns the link profile `name`, or an error listing the known names.
  Result<LinkProfile> link(std::string_view name) const;
};

// Reads and validates a profiles file. A missing field, a non-numeric or negative (or zero,
// where zero makes no sense) number is an error that names the profile and the field.
Result<Profiles> load_profiles(const std::string& path);
// Same, from TOML text; `origin` names it in error messages.
Result<Profiles> parse_profiles(std::string_view toml_text, std::string_view origin);

// How the bytes are laid out: one contiguous run, or many small scattered entries.
enum class Pattern { kBulk, kGather };

// Operations counted by a caller (a benchmark or the simulator), to be projected into time.
struct OpCounts {
  double bytes = 0;        // payload bytes moved
  double lines = 0;        // cache lines touched (wire bytes = max(bytes, lines * line_bytes))
  double messages = 0;     // separate transfers (RDMA work requests, DMA descriptors)
  double round_trips = 0;  // dependent round trips on the critical path
  Pattern pattern = Pattern::kBulk;
};

// One hop of a path; `parallel` identical links share the traffic (e.g. interleaved devices).
struct Hop {
  LinkProfile link;
  double parallel = 1;
};

// Projected seconds for `ops` on one link:
//   max(wire_bytes / rate(pattern), messages / message_rate) + round_trips * latency
double project_seconds(const LinkProfile& link, const OpCounts& ops);
// Projected seconds on a path: the slowest hop sets the rate, latencies of all hops add up.
double project_seconds(const std::vector<Hop>& path, const OpCounts& ops);
// Effective rate of a path for a pattern, bytes/s (the slowest hop).
double path_rate_bytes_per_s(const std::vector<Hop>& path, Pattern pattern);
// Sum of the hops' latencies, seconds.
double path_latency_s(const std::vector<Hop>& path);

}  // namespace cxlkv::fabric
