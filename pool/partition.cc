// Partition: a region opened or created, recovered and ready to serve (partition.h).
#include "partition.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "huge_pages.h"

namespace cxlkv::pool {

namespace {

// Where the region lives and on what pages (a shm region may go onto hugetlbfs), logged once.
// `fallback` says a new region was moved onto hugetlbfs, so a failed create may retry as asked.
Result<cxl::RegionSpec> place_region(const cxl::RegionSpec& wanted, cxl::HugePagePolicy policy, bool* fallback) {
  const cxl::HugePageSupport support = cxl::probe_huge_pages();
  auto placed = cxl::place_region(wanted, policy, support,
                                  [](const std::string& path) { return ::access(path.c_str(), F_OK) == 0; });
  if (!placed) return placed.status();
  spdlog::info("region {}:{}: {} (huge pages {}; {})", cxl::backend_name(placed->spec.backend), placed->spec.path,
               placed->pages, cxl::huge_page_policy_name(policy), support.describe());
  if (!placed->advice.empty()) spdlog::warn("region pages: 4 KiB, so a worker's first mapping of the pool is slow; {}", placed->advice);
  *fallback = policy == cxl::HugePagePolicy::kAuto && placed->moved;
  return placed->spec;
}

// A region opened or made: `fresh` when its header was just written (its allocator areas are
// not); `created` when its backing was made just now (so a start that fails removes it).
struct OpenedRegion {
  std::unique_ptr<cxl::Region> region;
  bool fresh = false;
  bool created = false;
};

// Creates the region if it does not exist, formats it only when asked, else opens it as it is.
Result<OpenedRegion> open_region(const PoolConfig& c, const cxl::RegionSpec& wanted, const Layout& layout) {
  bool fallback = false;
  auto placed = place_region(wanted, c.huge_pages, &fallback);
  if (!placed) return placed.status();
  cxl::RegionSpec spec = *placed;
  auto fresh = [&](Result<std::unique_ptr<cxl::Region>> r, bool created = true) -> Result<OpenedRegion> {
    if (!r) return r.status();
    return OpenedRegion{std::move(*r), true, created};
  };
  if (fallback) {
    // A new region on hugetlbfs: free pages can be taken meanwhile, or the mount be full; under
    // auto that is no reason not to start.
    auto r = cxl::Region::create(spec, layout, c.slab_pages);
    if (r) return fresh(std::move(r));
    spdlog::warn("region {}: {}; creating it in shared memory on 4 KiB pages instead", spec.path,
                 r.status().to_string());
    spec = wanted;
  }
  const std::string name = fmt::format("{}:{}", cxl::backend_name(spec.backend), spec.path);
  if (c.format) {
    auto r = cxl::Region::format(spec, layout, c.slab_pages);
    if (!r && r.status().code() == Code::kNotFound) return fresh(cxl::Region::create(spec, layout, c.slab_pages));
    return fresh(std::move(r), /*created=*/false);
  }
  auto r = cxl::Region::open(spec, &layout);
  if (!r && r.status().code() == Code::kNotFound && spec.backend != cxl::Backend::kDevdax)
    return fresh(cxl::Region::create(spec, layout, c.slab_pages));
  if (!r) {
    if (r.status().message().find("format version 1") != std::string::npos) return r.status();  // names its way out
    return Status(r.status().code(), r.status().message() + " (use --format to wipe and format it)");
  }
  if ((*r)->slab_pages() != c.slab_pages)
    return Status(Code::kMismatch, fmt::format("region {}: slab_pages {} configured, the region has {} (use "
                                               "--format to wipe and format it)", name, c.slab_pages,
                                               (*r)->slab_pages()));
  return OpenedRegion{std::move(*r), false};
}

// The metadata region of `data`: made (or, where it exists, formatted anew) and the allocator
// areas of both formatted when `data` is fresh; else opened and checked as data's.
Result<std::unique_ptr<cxl::Region>> open_metadata(const cxl::RegionSpec& spec, cxl::Region& data, bool fresh) {
  if (!fresh) {
    auto m = cxl::Region::open_metadata(spec, data);
    if (!m)
      return Status(m.status().code(), fmt::format("{}; the page records of region {} are there, so its pages cannot "
                                                   "be served (use --format to wipe and format both)",
                                                   m.status().message(), data.describe()));
    return m;
  }
  auto geometry_bytes = [&] {
    return SlabGeometry::plan(data.size(), data.data_offset(), data.layout(), data.slab_pages()).metadata_bytes();
  };
  auto m = spec.backend == cxl::Backend::kDevdax ? cxl::Region::format_metadata(spec, data)
                                                 : cxl::Region::create_metadata(spec, data, geometry_bytes());
  if (!m && m.status().code() == Code::kAlreadyExists) {
    // The records of a region now formatted anew: worthless. Remade at the size this one needs;
    // but only a metadata region no daemon holds is removed, never whatever else lies there.
    if (Status st = cxl::Region::remove_metadata(spec); !st) return st;
    m = cxl::Region::create_metadata(spec, data, geometry_bytes());
  }
  if (!m) return m.status();
  if (Status st = SlabAllocator::format(data, **m); !st) return st;
  spdlog::info("region {}: formatted, {} bytes, layout {}, E = {}; its records in {}", data.describe(), data.size(),
               data.layout().describe(), data.slab_pages(), (*m)->describe());
  return m;
}

}  // namespace

Result<std::unique_ptr<Partition>> Partition::open(const PoolConfig& config, const PartitionSpec& spec, uint32_t index,
                                                   const Layout& layout, const PoolOptions& options, uint64_t epoch) {
  std::unique_ptr<Partition> p(new Partition());
  p->name_ = spec.name;
  auto named = [&](const Status& st) { return Status(st.code(), fmt::format("partition '{}': {}", spec.name, st.message())); };
  auto region = open_region(config, spec.region, layout);
  if (!region) return named(region.status());
  p->region_ = std::move(region->region);
  auto metadata_spec = metadata_region(spec);
  if (!metadata_spec) return named(metadata_spec.status());
  auto metadata = open_metadata(*metadata_spec, *p->region_, region->fresh);
  if (!metadata) {
    // A backing made by this start is removed again, so the next start makes it anew rather
    // than finding a region whose records never were.
    if (region->created) {
      const cxl::RegionSpec made = p->region_->spec();
      p->region_.reset();
      (void)cxl::Region::remove_backing(made);
    }
    return named(metadata.status());
  }
  p->metadata_ = std::move(*metadata);
  auto allocator = SlabAllocator::open(*p->region_, *p->metadata_);
  if (!allocator) return named(allocator.status());
  p->allocator_ = std::move(*allocator);
  RecoveryReport report;
  auto service = PoolService::open(*p->region_, *p->allocator_, options, &report);
  if (!service) return named(Status(service.status().code(), "recovery: " + service.status().message()));
  p->service_ = std::move(*service);
  const PoolStats s = p->service_->stats();
  spdlog::info("partition '{}', region {}: recovered {} committed pages; freed {} reserved and {} invalid records, {} "
               "slabs; {} of {} slabs free", spec.name, p->region_->describe(), report.committed, report.reserved_freed,
               report.invalid_freed, report.slabs_freed, s.slabs_free, s.slabs_total);
  const std::vector<uint32_t> bound = tenant_partitions(config);
  for (size_t t = 0; t < config.tenants.size(); ++t)
    if (bound[t] == index) p->apply_share(uint32_t(t), config.tenants[t]);
  p->allocator_->announce_epoch(epoch);  // leases of the daemon before this one now fail as expired
  auto read_only_fd = p->region_->open_read_only_fd();  // what reader sessions are handed
  if (!read_only_fd) return named(read_only_fd.status());
  p->read_only_fd_ = *read_only_fd;
  auto writer_fd = p->region_->open_writer_fd();  // what writer sessions are handed (not the locked fd)
  if (!writer_fd) return named(writer_fd.status());
  p->writer_fd_ = *writer_fd;
  return p;
}

uint64_t Partition::share_slabs(const Tenant& tenant) const {
  return tenant.share > 0 ? static_cast<uint64_t>(tenant.share * double(service_->stats().slabs_total)) : 0;
}

void Partition::apply_share(uint32_t t, const Tenant& tenant) {
  if (tenant.share <= 0) return;
  const uint64_t slabs = share_slabs(tenant);
  service_->set_tenant_share(t, slabs);
  spdlog::info("tenant '{}': a share of {} of partition '{}', {} slabs", tenant.name, tenant.share, name_, slabs);
}

Partition::~Partition() {
  if (read_only_fd_ >= 0) ::close(read_only_fd_);
  if (writer_fd_ >= 0) ::close(writer_fd_);
  service_.reset();  // before the allocator and region it refers to
  allocator_.reset();
}

}  // namespace cxlkv::pool
