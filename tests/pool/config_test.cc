// Configuration: sizes, ranges, the TOML file, and flags over the file.
#include <catch2/catch_test_macros.hpp>

#include <cstdio>
#include <fstream>

#include "config.h"
#include "poold_process.h"

using namespace cxlkv;
using namespace cxlkv::pool;

namespace {

ConfigOutcome load(std::vector<std::string> args) {
  args.insert(args.begin(), "cxlkv-poold");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return load_config(static_cast<int>(argv.size()), argv.data());
}

// The arguments are refused (exit 2) with a message that says `text`.
void refused(std::vector<std::string> args, const char* text) {
  const ConfigOutcome o = load(std::move(args));
  INFO(o.message);
  REQUIRE(o.exit_now);
  REQUIRE(o.exit_code == 2);
  REQUIRE(o.message.find(text) != std::string::npos);
}

// A TOML file that removes itself.
struct TempToml {
  std::string path = testing::unique_name("config.toml");
  explicit TempToml(const std::string& text) { std::ofstream(path) << text; }
  ~TempToml() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("sizes parse with binary units and bad ones are named") {
  REQUIRE(*parse_size("4GiB") == 4ull << 30);
  REQUIRE(*parse_size("512MiB") == 512ull << 20);
  REQUIRE(*parse_size("2G") == 2ull << 30);
  REQUIRE(*parse_size("65536") == 65536);
  REQUIRE(parse_size("4 GiB").status().message().find("'4 GiB'") != std::string::npos);
  REQUIRE(parse_size("lots").status().code() == Code::kInvalidArgument);
}

TEST_CASE("no arguments give a shm region of 4 GiB, layout deepseek-v3.2, E = 1, on a Unix socket, open auth") {
  const ConfigOutcome o = load({});
  REQUIRE_FALSE(o.exit_now);
  REQUIRE(o.config.region.backend == cxl::Backend::kShm);
  REQUIRE(o.config.region.path == "/cxlkv-pool");
  REQUIRE(o.config.region.size == 4ull << 30);
  REQUIRE(o.config.layout == "deepseek-v3.2");
  REQUIRE(o.config.slab_pages == 1);
  REQUIRE(o.config.unix_socket == "/tmp/cxlkv-poold.sock");
  REQUIRE(o.config.tenants.empty());
}

TEST_CASE("the TOML file sets values and command-line flags override it") {
  TempToml file(R"(
[region]
size = "1GiB"
slab_pages = 8
[leases]
read_ttl_ms = 500
[[tenant]]
name = "a"
token = "ta"
)");
  ConfigOutcome o = load({"--config", file.path});
  REQUIRE_FALSE(o.exit_now);
  REQUIRE(o.config.region.size == 1ull << 30);
  REQUIRE(o.config.slab_pages == 8);
  REQUIRE(o.config.pool.read_lease_ttl_ms == 500);
  REQUIRE(o.config.tenants.size() == 1);
  o = load({"--config", file.path, "--slab-pages", "4", "--tenant", "b:tb", "--size", "2GiB"});
  REQUIRE(o.config.slab_pages == 4);
  REQUIRE(o.config.region.size == 2ull << 30);
  REQUIRE(o.config.tenants.size() == 1);
  REQUIRE(o.config.tenants[0].name == "b");
  REQUIRE(o.config.tenants[0].token == "tb");
}

TEST_CASE("an unknown key, a bad watermark pair or a bad layout is a configuration error") {
  TempToml typo("[region]\nsize_bytes = 5\n");
  ConfigOutcome o = load({"--config", typo.path});
  REQUIRE(o.exit_now);
  REQUIRE(o.exit_code == 2);
  REQUIRE(o.message.find("size_bytes") != std::string::npos);
  o = load({"--evict-high", "0.5", "--evict-low", "0.6"});
  REQUIRE(o.exit_code == 2);
  REQUIRE(o.message.find("watermarks") != std::string::npos);
  o = load({"--layout", "no-such-layout"});
  REQUIRE(o.exit_code == 2);
  o = load({"--backend", "tape"});
  REQUIRE(o.exit_code == 2);
}

TEST_CASE("--help exits 0 and documents every option") {
  const ConfigOutcome o = load({"--help"});
  REQUIRE(o.exit_now);
  REQUIRE(o.exit_code == 0);
  for (const char* flag : {"--config", "--backend", "--path", "--numa-node", "--size", "--layout", "--slab-pages",
                           "--socket", "--tcp", "--metrics-port", "--read-lease-ttl-ms", "--write-lease-ttl-ms",
                           "--evict-high", "--evict-low", "--tenant", "--log-level", "--format", "--verify-data",
                           "--huge-pages", "--partition", "--tenant-partition", "--region-name"})
    REQUIRE(o.message.find(flag) != std::string::npos);
  // --help says what this machine offers for huge pages.
  REQUIRE(o.message.find("This machine: shmem THP") != std::string::npos);
}

TEST_CASE("huge_pages: auto by default, set by the file or the flag, a wrong value refused naming the key") {
  CHECK(load({}).config.huge_pages == cxl::HugePagePolicy::kAuto);
  CHECK(load({"--huge-pages", "require"}).config.huge_pages == cxl::HugePagePolicy::kRequire);
  const ConfigOutcome bad_flag = load({"--huge-pages", "sometimes"});
  REQUIRE(bad_flag.exit_now);
  CHECK(bad_flag.exit_code == 2);
  CHECK(bad_flag.message.find("--huge-pages") != std::string::npos);
  PoolConfig c;
  REQUIRE(read_config_text("[region]\nhuge_pages = \"off\"\n", c).is_ok());
  CHECK(c.huge_pages == cxl::HugePagePolicy::kOff);
  const Status bad = read_config_text("[region]\nhuge_pages = \"on\"\n", c);
  REQUIRE(!bad.is_ok());
  CHECK(bad.message().find("'on'") != std::string::npos);
  CHECK(c.huge_pages == cxl::HugePagePolicy::kOff);
}

TEST_CASE("the shipped example configuration loads") {
  const char* path = std::getenv("CXLKV_EXAMPLE_CONFIG");
  REQUIRE(path != nullptr);
  const ConfigOutcome o = load({"--config", path});
  INFO(o.message);
  REQUIRE_FALSE(o.exit_now);
  REQUIRE(o.config.tenants.size() == 1);
  REQUIRE(o.config.metrics_port == 9464);
}

TEST_CASE("the socket mode is octal, 0660 by default, set by flag or file, and a bad one is named") {
  REQUIRE(load({}).config.unix_socket_mode == 0660);
  REQUIRE(load({"--socket-mode", "0600", "--socket-group", "kvusers"}).config.unix_socket_mode == 0600);
  REQUIRE(load({"--socket-group", "kvusers"}).config.unix_socket_group == "kvusers");
  TempToml file("[server]\nunix_socket_mode = \"0640\"\nunix_socket_group = \"adm\"\n");
  const ConfigOutcome o = load({"--config", file.path});
  REQUIRE(o.config.unix_socket_mode == 0640);
  REQUIRE(o.config.unix_socket_group == "adm");
  REQUIRE(parse_socket_mode("660").value() == 0660);
  for (const char* bad : {"0668", "rw", "", "07777", "0066"}) {
    auto m = parse_socket_mode(bad);
    REQUIRE_FALSE(m.is_ok());
    REQUIRE(m.status().message().find(std::string("'") + bad + "'") != std::string::npos);
  }
  REQUIRE(load({"--socket-mode", "0999"}).exit_now);
  TempToml bad_file("[server]\nunix_socket_mode = \"abc\"\n");
  REQUIRE(load({"--config", bad_file.path}).exit_now);
}

TEST_CASE("tenant shares come from the file or --tenant-share, and a bad or unknown one is named") {
  TempToml file("[[tenant]]\nname = \"a\"\ntoken = \"x\"\nshare = 0.25\n[[tenant]]\nname = \"b\"\ntoken = \"y\"\n");
  const ConfigOutcome o = load({"--config", file.path});
  REQUIRE_FALSE(o.exit_now);
  REQUIRE(o.config.tenants.size() == 2);
  REQUIRE(o.config.tenants[0].share == 0.25);
  REQUIRE(o.config.tenants[1].share == 0);
  const ConfigOutcome flags = load({"--tenant", "a:x", "--tenant", "b:y", "--tenant-share", "b=0.5"});
  REQUIRE_FALSE(flags.exit_now);
  REQUIRE(flags.config.tenants[1].share == 0.5);
  const ConfigOutcome unknown = load({"--tenant", "a:x", "--tenant-share", "c=0.5"});
  REQUIRE(unknown.exit_now);
  REQUIRE(unknown.message.find("c: no such tenant") != std::string::npos);
  const ConfigOutcome over = load({"--tenant", "a:x", "--tenant-share", "a=1.5"});
  REQUIRE(over.exit_now);
  REQUIRE(over.message.find("share 1.5 must be in 0..1") != std::string::npos);
  REQUIRE(load({"--tenant", "a:x", "--tenant-share", "a"}).exit_now);  // no fraction
}

TEST_CASE("a TOML text reads as --config reads its file, and a syntax error names its line") {
  PoolConfig c;
  REQUIRE(read_config_text("[server]\nmax_connections = 32\n[[tenant]]\nname = \"a\"\ntoken = \"x\"\n", c).is_ok());
  REQUIRE(c.max_connections == 32);
  REQUIRE(c.tenants.size() == 1);
  const Status bad = read_config_text("[server]\nmax_connections = = 3\n", c);
  REQUIRE(bad.code() == Code::kInvalidArgument);
  REQUIRE(bad.message().find("line 2") != std::string::npos);
  const Status unknown = read_config_text("[server]\nmax_conections = 3\n", c);
  REQUIRE(unknown.message().find("unknown key 'max_conections' in [server]") != std::string::npos);
}

TEST_CASE("a value of the wrong type or out of its field's range is an error naming the key") {
  PoolConfig c;
  const Status huge = read_config_text("[leases]\nread_ttl_ms = 6.6e103\n", c);
  REQUIRE(huge.code() == Code::kInvalidArgument);
  REQUIRE(huge.message().find("read_ttl_ms has the wrong type (a number)") != std::string::npos);
  const Status range = read_config_text("[metrics]\nport = 70000\n", c);
  REQUIRE(range.message().find("port = 70000 is outside 0..65535") != std::string::npos);
  const Status negative = read_config_text("[server]\nmax_connections = -1\n", c);
  REQUIRE(negative.message().find("max_connections = -1 is outside") != std::string::npos);
  const Status text = read_config_text("[server]\nmax_connections = \"many\"\n", c);
  REQUIRE(text.message().find("max_connections has the wrong type (a string)") != std::string::npos);
  REQUIRE(read_config_text("[eviction]\nhigh_watermark = 1\n", c).is_ok());  // an integer is a number
  REQUIRE(c.pool.watermarks.high == 1.0);
}

TEST_CASE("tenant roles come from the file or --tenant-roles; an unknown role or tenant is named") {
  PoolConfig c;
  REQUIRE(read_config_text("[[tenant]]\nname = \"d\"\ntoken = \"x\"\nroles = [\"reader\"]\n", c).is_ok());
  REQUIRE(c.tenants[0].may_read);
  REQUIRE_FALSE(c.tenants[0].may_write);
  PoolConfig bad;
  const Status st = read_config_text("[[tenant]]\nname = \"d\"\ntoken = \"x\"\nroles = [\"root\"]\n", bad);
  REQUIRE(st.message().find("tenant 'd': role 'root' is not reader, writer or admin") != std::string::npos);
  const ConfigOutcome flags = load({"--tenant", "d:x", "--tenant", "p:y", "--tenant-roles", "d=reader"});
  REQUIRE_FALSE(flags.exit_now);
  REQUIRE(flags.config.tenants[0].may_read);
  REQUIRE_FALSE(flags.config.tenants[0].may_write);
  REQUIRE(flags.config.tenants[1].may_write);  // the default: both
  REQUIRE(load({"--tenant", "d:x", "--tenant-roles", "d=root"}).exit_now);
  const ConfigOutcome admin = load({"--tenant", "d:x", "--tenant-roles", "d=admin"});
  REQUIRE_FALSE(admin.exit_now);
  REQUIRE((admin.config.tenants[0].may_admin && !admin.config.tenants[0].may_read && !admin.config.tenants[0].may_write));
  REQUIRE_FALSE(flags.config.tenants[1].may_admin);  // the default: not admin
  REQUIRE(load({"--tenant", "d:x", "--tenant-roles", "e=reader"}).message.find("e: no such tenant") != std::string::npos);
}

TEST_CASE("[cluster] comes from the file or the flags; a bad URL, node id, TTL or endpoint is named") {
  PoolConfig c;
  REQUIRE(read_config_text("[cluster]\nurl = \"etcd://127.0.0.1:2379/serving\"\nnode_id = \"mem-1\"\n"
                           "advertise = [\"tcp:10.0.0.5:7070\"]\nlease_ttl_s = 5\nchunk_pages = 8\n", c).is_ok());
  CHECK(c.cluster_url == "etcd://127.0.0.1:2379/serving");
  CHECK(c.node_id == "mem-1");
  CHECK(c.advertise == std::vector<std::string>{"tcp:10.0.0.5:7070"});
  CHECK(c.cluster_lease_ttl_s == 5);
  CHECK(c.chunk_pages == 8);
  REQUIRE(validate_config(c).is_ok());

  auto flags = load({"--cluster", "etcd://h:1/x", "--node-id", "n.2", "--advertise", "unix:/tmp/a.sock",
                     "--cluster-lease-ttl-s", "3", "--chunk-pages", "4"});
  REQUIRE_FALSE(flags.exit_now);
  CHECK(flags.config.cluster_url == "etcd://h:1/x");
  CHECK(flags.config.node_id == "n.2");
  CHECK(flags.config.chunk_pages == 4);
  CHECK(load({}).config.cluster_url.empty());  // a lone node by default

  auto bad_url = load({"--cluster", "http://h:1/x"});
  CHECK(bad_url.exit_code == 2);
  CHECK(bad_url.message.find("http://h:1/x") != std::string::npos);
  auto bad_id = load({"--cluster", "etcd://h:1/x", "--node-id", "a/b"});
  CHECK(bad_id.exit_code == 2);
  CHECK(bad_id.message.find("node id 'a/b'") != std::string::npos);
  auto bad_ttl = load({"--cluster", "etcd://h:1/x", "--cluster-lease-ttl-s", "1"});
  CHECK(bad_ttl.message.find("lease_ttl_s 1") != std::string::npos);
  auto bad_endpoint = load({"--cluster", "etcd://h:1/x", "--advertise", "h:1"});
  CHECK(bad_endpoint.message.find("'h:1'") != std::string::npos);
  PoolConfig t;
  CHECK(read_config_text("[cluster]\nadvertise = \"tcp:h:1\"\n", t).message().find("array of strings") != std::string::npos);
}

TEST_CASE("TLS settings come from the file or the flags; a certificate without its key or listener is named") {
  PoolConfig c;
  REQUIRE(read_config_text("[server]\ntcp = \"0.0.0.0:7460\"\ntls_certificate = \"/etc/c.pem\"\n"
                           "tls_private_key = \"/etc/c.key\"\ninsecure_tcp = false\n", c).is_ok());
  CHECK(c.tls_certificate == "/etc/c.pem");
  CHECK(c.tls_private_key == "/etc/c.key");
  CHECK(validate_config(c).is_ok());
  CHECK(read_config_text("[server]\ninsecure_tcp = \"yes\"\n", c).message().find("insecure_tcp has the wrong type") !=
        std::string::npos);
  const ConfigOutcome flags = load({"--tcp", "0.0.0.0:7460", "--insecure-tcp"});
  REQUIRE_FALSE(flags.exit_now);
  CHECK(flags.config.insecure_tcp);
  CHECK_FALSE(load({}).config.insecure_tcp);
  const ConfigOutcome half = load({"--tcp", "127.0.0.1:7460", "--tls-certificate", "/etc/c.pem"});
  REQUIRE(half.exit_now);
  CHECK(half.message.find("both a certificate and a private key") != std::string::npos);
  const ConfigOutcome no_listener = load({"--tls-certificate", "/etc/c.pem", "--tls-private-key", "/etc/c.key"});
  REQUIRE(no_listener.exit_now);
  CHECK(no_listener.message.find("no TCP listener") != std::string::npos);
  const ConfigOutcome advertised = load({"--cluster", "etcd://127.0.0.1:2379/x", "--advertise", "tls:10.0.0.5:7460"});
  CHECK_FALSE(advertised.exit_now);
}

TEST_CASE("partitions come from the file or the flags, each tenant bound to one; bad bindings and places are named") {
  PoolConfig c;
  REQUIRE(read_config_text("[region]\nname = \"alpha\"\npath = \"/a\"\nsize = \"1GiB\"\n"
                           "[[partition]]\nname = \"beta\"\npath = \"/b\"\nsize = \"256MiB\"\n"
                           "[[partition]]\nname = \"gamma\"\nbackend = \"file\"\npath = \"/tmp/g\"\n"
                           "[[tenant]]\nname = \"x\"\ntoken = \"1\"\n"
                           "[[tenant]]\nname = \"y\"\ntoken = \"2\"\npartition = \"beta\"\n"
                           "[[tenant]]\nname = \"z\"\ntoken = \"3\"\npartition = \"gamma\"\n",
                           c).is_ok());
  REQUIRE(validate_config(c).is_ok());
  const std::vector<PartitionSpec> all = served_partitions(c);
  REQUIRE(all.size() == 3);
  REQUIRE((all[0].name == "alpha" && all[0].region.path == "/a" && all[0].region.size == 1ull << 30));
  REQUIRE((all[1].name == "beta" && all[1].region.backend == cxl::Backend::kShm && all[1].region.size == 256ull << 20));
  REQUIRE((all[2].region.backend == cxl::Backend::kFile && all[2].region.size == 1ull << 30));  // the region's size
  REQUIRE(tenant_partitions(c) == std::vector<uint32_t>{0, 1, 2});

  const ConfigOutcome flags = load({"--path", "/m", "--tenant", "x:1", "--tenant", "y:2", "--partition",
                                    "p1=shm:/p1:64MiB", "--tenant-partition", "y=p1"});
  REQUIRE_FALSE(flags.exit_now);
  REQUIRE(flags.config.partitions.size() == 1);
  REQUIRE((flags.config.partitions[0].region.path == "/p1" && flags.config.partitions[0].region.size == 64ull << 20));
  REQUIRE(tenant_partitions(flags.config) == std::vector<uint32_t>{0, 1});
  const ConfigOutcome sized = load({"--partition", "p1=shm:/p1", "--size", "1GiB", "--tenant", "x:1", "--tenant",
                                    "y:2", "--tenant-partition", "y=p1"});
  REQUIRE_FALSE(sized.exit_now);
  REQUIRE(sized.config.partitions[0].region.size == 1ull << 30);  // --size, wherever it stands

  const auto says = refused;
  says({"--tenant", "x:1", "--tenant-partition", "x=nope"}, "tenant 'x': partition 'nope' is not one of the daemon's (main)");
  says({"--tenant", "x:1", "--tenant-partition", "q=main"}, "q: no such tenant");
  says({"--tenant", "x:1", "--partition", "p=shm:/p", "--tenant-partition", "y=p"}, "y: no such tenant");
  says({"--tenant", "x:1", "--tenant-partition", "x"}, "tenant 'x': partition '(none: give NAME=PARTITION)' is not one");
  says({"--tenant", "x:1", "--partition", "p=shm:/p"}, "partition 'p' is bound to no tenant");
  says({"--partition", "p=shm:/p"}, "no tenants: partitions are bound to tenants");
  says({"--tenant", "x:1", "--partition", "p=shm:/cxlkv-pool", "--tenant-partition", "x=p"},
       "region shm:/cxlkv-pool is another partition's too");
  says({"--tenant", "x:1", "--partition", "main=shm:/p", "--tenant-partition", "x=main"}, "partition 'main' is named twice");
  says({"--tenant", "x:1", "--partition", "p q=shm:/p", "--tenant-partition", "x=p q"}, "must be [A-Za-z0-9._-]");
  says({"--tenant", "x:1", "--partition", "p=tape:/p", "--tenant-partition", "x=p"}, "partition 'p': the backend is not one of");
  says({"--tenant", "x:1", "--partition", "p=shm", "--tenant-partition", "x=p"}, "partition 'p' needs a path");
  says({"--tenant", "x:1", "--partition", "p=shm:/p:lots", "--tenant-partition", "x=p"}, "--partition p=shm:/p:lots: ");
  says({"--tenant", "x:1", "--partition", "p=shm:/p:lots", "--tenant-partition", "x=p"}, "lots");
  PoolConfig bad;
  REQUIRE(read_config_text("[[partition]]\nname = \"b\"\npath = \"/b\"\ncolour = 1\n", bad).message().find(
              "colour") != std::string::npos);
}

TEST_CASE("metadata regions: beside shm, numa and file regions by default, named for devdax; bad or shared ones named") {
  PoolConfig c;
  REQUIRE(read_config_text("[region]\npath = \"/a\"\nmetadata = \"file:/var/tmp/a.meta\"\n"
                           "[[partition]]\nname = \"dax\"\nbackend = \"devdax\"\npath = \"/dev/dax0.1\"\n"
                           "metadata = \"devdax:/dev/dax0.3\"\n"
                           "[[partition]]\nname = \"f\"\nbackend = \"file\"\npath = \"/tmp/f\"\n"
                           "[[tenant]]\nname = \"x\"\ntoken = \"1\"\n"
                           "[[tenant]]\nname = \"y\"\ntoken = \"2\"\npartition = \"dax\"\n"
                           "[[tenant]]\nname = \"z\"\ntoken = \"3\"\npartition = \"f\"\n",
                           c).is_ok());
  REQUIRE(validate_config(c).is_ok());
  const std::vector<PartitionSpec> all = served_partitions(c);
  auto m0 = metadata_region(all[0]), m1 = metadata_region(all[1]), m2 = metadata_region(all[2]);
  REQUIRE((m0 && m1 && m2));
  CHECK((m0->backend == cxl::Backend::kFile && m0->path == "/var/tmp/a.meta"));
  CHECK((m1->backend == cxl::Backend::kDevdax && m1->path == "/dev/dax0.3"));
  CHECK((m2->backend == cxl::Backend::kFile && m2->path == "/tmp/f.meta"));  // the default beside a file
  auto shm = metadata_region(PartitionSpec{"s", cxl::RegionSpec{cxl::Backend::kShm, "/pool", -1, 1}});
  REQUIRE(shm.is_ok());
  CHECK((shm->backend == cxl::Backend::kShm && shm->path == "/pool.meta"));
  auto numa = metadata_region(PartitionSpec{"n", cxl::RegionSpec{cxl::Backend::kNuma, "/pool", 1, 1}});
  REQUIRE(numa.is_ok());
  CHECK((numa->backend == cxl::Backend::kShm && numa->path == "/pool.meta"));

  const ConfigOutcome flags = load({"--backend", "devdax", "--path", "/dev/dax0.0", "--metadata", "devdax:/dev/dax0.2",
                                    "--tenant", "x:1", "--tenant", "y:2", "--partition", "b=devdax:/dev/dax0.1",
                                    "--partition-metadata", "b=devdax:/dev/dax0.3", "--tenant-partition", "y=b"});
  INFO(flags.message);
  REQUIRE_FALSE(flags.exit_now);
  CHECK(flags.config.region_metadata == "devdax:/dev/dax0.2");
  CHECK(flags.config.partitions[0].metadata == "devdax:/dev/dax0.3");

  const auto says = refused;
  says({"--backend", "devdax", "--path", "/dev/dax0.0"}, "a device region has no default metadata region; name one");
  says({"--tenant", "x:1", "--partition", "b=devdax:/dev/dax0.1", "--tenant-partition", "x=b"},
       "partition 'b': region devdax:/dev/dax0.1: a device region has no default metadata region");
  says({"--metadata", "/no-backend"}, "metadata '/no-backend' must be BACKEND:PATH");
  says({"--metadata", "numa:/m"}, "metadata 'numa:/m' must be BACKEND:PATH with backend shm, file or devdax");
  says({"--metadata", "shm:/cxlkv-pool"}, "metadata region shm:/cxlkv-pool is taken by another region or partition");
  says({"--tenant", "x:1", "--tenant", "y:2", "--partition", "b=shm:/b", "--partition-metadata", "b=shm:/cxlkv-pool.meta",
        "--tenant-partition", "y=b"},
       "partition 'b': metadata region shm:/cxlkv-pool.meta is taken");
  says({"--partition-metadata", "nope=shm:/n"}, "--partition-metadata nope=shm:/n: no partition 'nope'");
  says({"--partition-metadata", "main"}, "--partition-metadata main: give NAME=BACKEND:PATH");
}
