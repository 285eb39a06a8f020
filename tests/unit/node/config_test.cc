// The agent's config file: keys, defaults and the one-line errors of
// validate(). Files are written to a temporary directory.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/node/config.h"
#include "unit/temp_dir.h"

namespace lxmig::node {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  // A valid minimal config plus `extra` lines.
  Result<AgentConfig> load(const std::string& extra, const std::string& stateDir = "/var/lib/x") {
    const std::string path = tmp_.path() + "/agent.conf";
    const std::string base = "node = \"n1\"\nstate_dir = \"" + stateDir +
                             "\"\ncontainer_subnet = \"10.200.1.0/24\"\ngateway = \"10.200.0.1\"\n";
    EXPECT_TRUE(writeFileAtomic(path, base + extra).ok());
    return AgentConfig::load(path);
  }
  testing::TempDir tmp_{"lxmig-config-test"};
};

TEST_F(ConfigTest, SourceSilenceDefaultsTo120Seconds) {
  auto c = load("");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->validate().ok());
  EXPECT_EQ(c->sourceSilenceSeconds(), 120);
  auto d = load("source_silence = \"5\"\n");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->validate().ok());
  EXPECT_EQ(d->sourceSilenceSeconds(), 5);
}

TEST_F(ConfigTest, BadValuesAreOneLineErrors) {
  // Numbers past an int once read as small ones (atoi: "4294967297" was 1).
  for (const char* bad : {"0", "-3", "ten", "1.5", "", "4294967297", "42949672970", "86401"}) {
    auto c = load(std::string("source_silence = \"") + bad + "\"\n");
    ASSERT_TRUE(c.ok()) << bad;
    Status st = c->validate();
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("bad source_silence"), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find('\n'), std::string::npos);
  }
  auto link = load("data_listen = \"10.0.0.1:7401\"\n");
  ASSERT_TRUE(link.ok());
  EXPECT_NE(link->validate().message().find("`data_listen` needs `listen`"), std::string::npos);
  auto unknown = load("sourcesilence = \"5\"\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown key `sourcesilence`"), std::string::npos);
}

TEST_F(ConfigTest, CgroupParentAndInterfacesAreNamesNotPaths) {
  auto plain = load("");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->validate().ok()) << plain->validate().message();
  for (const char* good : {"lxmig", "lxbench-n1", "machine.slice/lxmig"}) {
    auto c = load(std::string("cgroup_parent = \"") + good + "\"\n");
    ASSERT_TRUE(c.ok()) << good;
    EXPECT_TRUE(c->validate().ok()) << good << ": " << c->validate().message();
  }
  // The agent makes, joins and removes directories there.
  for (const char* bad : {"", ".", "..", "../../etc", "/lxmig", "a//b", "a/../b", "lxmig/"}) {
    auto c = load(std::string("cgroup_parent = \"") + bad + "\"\n");
    ASSERT_TRUE(c.ok()) << bad;
    EXPECT_EQ(c->validate().message(),
              std::string("bad cgroup_parent `") + bad + "`: cgroup names joined by '/', none empty, \".\" or \"..\"");
  }
  for (const char* key : {"bridge", "fabric_if"}) {
    auto ok = load(std::string(key) + " = \"br-fab.0\"\n");
    ASSERT_TRUE(ok.ok()) << key;
    EXPECT_TRUE(ok->validate().ok()) << key << ": " << ok->validate().message();
    for (const char* bad : {"a/b", "eth0:1", "has space", "sixteen-bytes-ab", ".."}) {
      auto c = load(std::string(key) + " = \"" + bad + "\"\n");
      ASSERT_TRUE(c.ok()) << key << " " << bad;
      EXPECT_EQ(c->validate().message(), std::string("bad ") + key + " `" + bad +
                                             "`: an interface name, 1 to 15 bytes without '/', ':' or spaces");
    }
  }
  auto noBridge = load("bridge = \"\"\n");
  ASSERT_TRUE(noBridge.ok());
  EXPECT_NE(noBridge->validate().message().find("bad bridge"), std::string::npos);
}

TEST_F(ConfigTest, TmpfsSizeAndDirectoriesAreWhatTheirUseTakes) {
  for (const char* good : {"0", "50%", "100%", "24m", "1G", "4294967296", "2t"}) {
    auto c = load(std::string("images_tmpfs_size = \"") + good + "\"\n");
    ASSERT_TRUE(c.ok()) << good;
    EXPECT_TRUE(c->validate().ok()) << good << ": " << c->validate().message();
  }
  // The size goes into the tmpfs's mount options: a comma would add one.
  for (const char* bad : {"", "50%,mode=0777", "1g,uid=1000", "101%", "-1", "1.5g", "g", "1gb", "1 g",
                          // zero other than "0": tmpfs would read it as no limit
                          "00", "0k", "0%", "000g"}) {
    auto c = load(std::string("images_tmpfs_size = \"") + bad + "\"\n");
    ASSERT_TRUE(c.ok()) << bad;
    EXPECT_EQ(c->validate().message(),
              std::string("bad images_tmpfs_size `") + bad +
                  "`: 0 (no tmpfs), bytes above 0 with an optional k, m, g or t, or a percentage of the RAM (50%)");
  }
  for (const char* bad : {"relative/dir", "/var/lib/../etc", "/var//lib"}) {
    auto state = load("", bad);
    ASSERT_TRUE(state.ok()) << bad;
    EXPECT_EQ(state->validate().message(),
              std::string("bad state_dir `") + bad + "`: an absolute path without . or .. components");
    auto lxc = load(std::string("lxc_path = \"") + bad + "\"\n");
    ASSERT_TRUE(lxc.ok()) << bad;
    EXPECT_EQ(lxc->validate().message(),
              std::string("bad lxc_path `") + bad + "`: an absolute path without . or .. components");
    auto disk = load(std::string("images_disk_dir = \"") + bad + "\"\n");
    ASSERT_TRUE(disk.ok()) << bad;
    EXPECT_EQ(disk->validate().message(),
              std::string("bad images_disk_dir `") + bad + "`: an absolute path without . or .. components, or off");
  }
}

TEST_F(ConfigTest, AuditRetentionIsDaysWeeksOrOff) {
  auto c = load("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->auditRetentionMs(), int64_t{90} * 86400 * 1000) << "90 days by default";
  const std::pair<const char*, int64_t> good[] = {
      {"1d", int64_t{86400} * 1000}, {"13w", int64_t{91} * 86400 * 1000}, {"off", 0}};
  for (const auto& [text, ms] : good) {
    auto g = load(std::string("audit_retention = \"") + text + "\"\n");
    ASSERT_TRUE(g.ok()) << text;
    EXPECT_TRUE(g->validate().ok()) << text << ": " << g->validate().message();
    EXPECT_EQ(g->auditRetentionMs(), ms) << text;
  }
  for (const char* bad :
       {"", "0d", "90", "90 d", "d", "1.5d", "-1d", "36501d", "5201w", "never", "99999999999999999999d"}) {
    auto b = load(std::string("audit_retention = \"") + bad + "\"\n");
    ASSERT_TRUE(b.ok()) << bad;
    Status st = b->validate();
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("audit_retention"), std::string::npos) << st.message();
  }
}

TEST_F(ConfigTest, CapacityIsAutoOrAFigure) {
  auto c = load("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->capacityCpuCount(), 0) << "auto";
  EXPECT_EQ(c->capacityMemoryBytes(), 0u) << "auto";
  auto g = load("capacity_cpus = \"1.5\"\ncapacity_memory = \"2G\"\n");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->validate().ok()) << g->validate().message();
  EXPECT_DOUBLE_EQ(g->capacityCpuCount(), 1.5);
  EXPECT_EQ(g->capacityMemoryBytes(), uint64_t{2} << 30);
  auto m = load("capacity_memory = \"536870912\"\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->capacityMemoryBytes(), uint64_t{512} << 20);
  for (const char* bad : {"0", "-1", "two", "1e3", "nan", " 2", "99999"}) {
    auto b = load(std::string("capacity_cpus = \"") + bad + "\"\n");
    ASSERT_TRUE(b.ok()) << bad;
    EXPECT_NE(b->validate().message().find("bad capacity_cpus"), std::string::npos) << bad;
  }
  for (const char* bad : {"0", "2X", "G", "-1G", "1.5G", "99999999999999999G"}) {
    auto b = load(std::string("capacity_memory = \"") + bad + "\"\n");
    ASSERT_TRUE(b.ok()) << bad;
    EXPECT_NE(b->validate().message().find("bad capacity_memory"), std::string::npos) << bad;
  }
}

// Keys that take one of a few words: the default, every other word
// accepted, and a wrong one refused with the words it could have been.
TEST_F(ConfigTest, WordKeysTakeTheirWordsOnly) {
  struct Case {
    const char* key;
    std::string AgentConfig::*field;
    const char* byDefault;
    std::vector<const char*> others;
    const char* bad;
    const char* expected;
  };
  const Case cases[] = {
      {"data_link_cipher",
       &AgentConfig::dataLinkCipher,
       "auto",
       {"aes-128-gcm"},
       "chacha",
       "bad data_link_cipher `chacha` (auto or aes-128-gcm)"},
      {"criu_held_pages", &AgentConfig::criuHeldPages, "auto", {"off"}, "on", "bad criu_held_pages `on` (auto or off)"},
      {"criu_held_shmem", &AgentConfig::criuHeldShmem, "auto", {"off"}, "on", "bad criu_held_shmem `on` (auto or off)"},
      {"criu_pagemap_offsets",
       &AgentConfig::criuPagemapOffsets,
       "auto",
       {"off"},
       "on",
       "bad criu_pagemap_offsets `on` (auto or off)"},
      {"accept_forwarded",
       &AgentConfig::acceptForwarded,
       "true",
       {"false"},
       "yes",
       "bad accept_forwarded `yes` (true or false)"},
  };
  auto plain = load("");
  ASSERT_TRUE(plain.ok());
  for (const auto& c : cases) {
    EXPECT_EQ((*plain).*c.field, c.byDefault) << c.key;
    for (const char* word : c.others) {
      auto ok = load(std::string(c.key) + " = \"" + word + "\"\n");
      ASSERT_TRUE(ok.ok()) << c.key;
      EXPECT_EQ((*ok).*c.field, word) << c.key;
      EXPECT_TRUE(ok->validate().ok()) << c.key << " = " << word;
    }
    auto bad = load(std::string(c.key) + " = \"" + c.bad + "\"\n");
    ASSERT_TRUE(bad.ok()) << c.key;
    EXPECT_EQ(bad->validate().message(), c.expected);
  }
}

TEST_F(ConfigTest, IdmapIsABaseAndASizeOrOff) {
  auto c = load("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->idmapRange(), (std::pair<uint32_t, uint32_t>{100000, 65536}));
  EXPECT_EQ(c->userns, "off");
  auto wide = load("idmap = \"1000000:1000000000\"\nuserns = \"on\"\n");
  ASSERT_TRUE(wide.ok());
  EXPECT_TRUE(wide->validate().ok()) << wide->validate().toString();
  EXPECT_EQ(wide->idmapRange(), (std::pair<uint32_t, uint32_t>{1000000, 1000000000}));
  auto off = load("idmap = \"off\"\n");
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off->validate().ok());
  EXPECT_EQ(off->idmapRange().second, 0u);
  for (const char* bad : {"0:65536", "100000:100", "100000", "x:65536", "4294967000:65536", "100000:-1"}) {
    auto b = load(std::string("idmap = \"") + bad + "\"\n");
    ASSERT_TRUE(b.ok());
    EXPECT_NE(b->validate().message().find("bad idmap"), std::string::npos) << bad;
  }
  auto yes = load("userns = \"yes\"\n");
  ASSERT_TRUE(yes.ok());
  EXPECT_EQ(yes->validate().message(), "bad userns `yes` (on or off)");
}

TEST_F(ConfigTest, ImagesDiskDirIsAnAbsolutePathOrOff) {
  for (const char* good : {"/srv/lxmig-images", "off"}) {
    auto c = load(std::string("images_disk_dir = \"") + good + "\"\n");
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->validate().ok()) << good;
  }
  auto bad = load("images_disk_dir = \"images\"\n");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->validate().message(),
            "bad images_disk_dir `images`: an absolute path without . or .. components, or off");
}

TEST_F(ConfigTest, DataLinkDefaultsToTheNextPort) {
  auto c = load("listen = \"10.99.0.11:7400\"\n");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dataAddress(), "10.99.0.11:7401");
  auto off = load("listen = \"10.99.0.11:7400\"\ndata_listen = \"off\"\n");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->dataAddress(), "");
}

// The cluster file's [store] table (sched/cluster_store.h): etcd endpoints,
// TLS files, the lease TTL; every bad value is a one-line error naming it.
TEST(ClusterConfigTest, StoreTableNamesEtcd) {
  auto none = ClusterConfig::parse("[node.n1]\naddress = \"10.0.0.1:7443\"\n", "c.toml");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(none->store.enabled());

  auto two = ClusterConfig::parse(
      "[store]\netcd = \"http://10.0.0.5:2379, https://etcd.example:2379\"\netcd_ca = \"/etc/lxmig/etcd-ca.pem\"\n"
      "ttl = \"15\"\n",
      "c.toml");
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(two->store.etcd, (std::vector<std::string>{"http://10.0.0.5:2379", "https://etcd.example:2379"}));
  EXPECT_EQ(two->store.ca, "/etc/lxmig/etcd-ca.pem");
  EXPECT_EQ(two->store.ttlSeconds, 15);
  EXPECT_TRUE(two->nodes.empty()) << "with a store, the file may list no node";
  auto arr = ClusterConfig::parse("[store]\netcd = [\"http://a:2379\", \"http://b:2379\"]\nttl = 5\n", "c.toml");
  ASSERT_TRUE(arr.ok()) << arr.status().message();
  EXPECT_EQ(arr->store.etcd, (std::vector<std::string>{"http://a:2379", "http://b:2379"}));
  EXPECT_EQ(arr->store.ttlSeconds, 5);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"etcd = \"10.0.0.5:2379\"", "not http://HOST:PORT"},
      {"etcd = \"http://10.0.0.5\"", "has no HOST:PORT"},
      {"etcd = \"http://10.0.0.5:99999\"", "port"},
      {"etcd = \"http://a b:2379\"", "bad address `a b:2379`"},
      {"etcd = \"http://a:0\"", "port 0"},
      {"etcd = \"http://e:2379\"\nttl = \"1\"", "ttl"},
      {"etcd = \"http://e:2379\"\nttl = \"301\"", "ttl"},
      {"etcd = \"http://e:2379\"\netcd_ca = \"relative.pem\"", "relative.pem"},
      {"etcd = \"http://e:2379\"\netcd_cert = \"/c.pem\"", "go together"},
      {"etcd = \"http://e:2379\"\nlease = \"3\"", "unknown key `store.lease`"},
  };
  for (const auto& [text, why] : bad) {
    auto c = ClusterConfig::parse("[store]\n" + text + "\n", "c.toml");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(why), std::string::npos) << text << ": " << c.status().message();
    EXPECT_EQ(c.status().message().find('\n'), std::string::npos) << c.status().message();
  }
}

// docs/config.md's table of agent.conf keys is the parser's: the same keys
// in the same order, with the same defaults ("(required)" and "(none)" for
// an empty one), so the two cannot drift.
TEST(ConfigDocTest, DocsListEveryKeyWithItsDefault) {
  auto doc = readFile(std::string(LXMIG_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  std::vector<std::pair<std::string, std::string>> listed;
  bool inAgent = false;
  for (const auto& line : split(*doc, '\n')) {
    if (line.rfind("## ", 0) == 0) inAgent = line == "## agent.conf";
    if (!inAgent || line.rfind("| `", 0) != 0) continue;
    auto cells = split(line, '|');
    ASSERT_GE(cells.size(), 4u) << line;
    auto unquote = [](std::string_view c) {
      c = trim(c);
      if (c.size() >= 2 && c.front() == '`' && c.back() == '`') return std::string(c.substr(1, c.size() - 2));
      return std::string();
    };
    listed.emplace_back(unquote(cells[0]), unquote(cells[2]));
  }
  EXPECT_EQ(listed, AgentConfig::keys());
}

// Arrays where lists are meant; the old string form of `devices` still
// read, with a warning; every problem listed with its line when asked.
TEST_F(ConfigTest, DevicesIsAnArrayAndEveryProblemIsListed) {
  auto arr = load("devices = [\"/dev/fuse\", \"gpu=/dev/nvidia0\"]\n");
  ASSERT_TRUE(arr.ok()) << arr.status().message();
  EXPECT_EQ(arr->devices, "/dev/fuse gpu=/dev/nvidia0");
  auto none = load("devices = []\n");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->devices, "none");

  const std::string base =
      "node = \"n1\"\nstate_dir = \"/var/lib/x\"\ncontainer_subnet = \"10.200.1.0/24\"\ngateway = \"10.200.0.1\"\n";
  AgentConfig::Report report;
  auto old = AgentConfig::parse(base + "devices = \"/dev/fuse\"\n", "a.conf", &report);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->devices, "/dev/fuse");
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("a.conf:5: `devices` as a space-separated string is deprecated"), std::string::npos)
      << report.warnings[0];

  AgentConfig::Report bad;
  auto many = AgentConfig::parse(
      base + "sourcesilence = 5\nmax_incoming = [4]\ndevices = [\"a b\"]\nfirewall = \"closed\"\n", "b.conf", &bad);
  ASSERT_TRUE(many.ok()) << "with a report, parse goes on";
  EXPECT_EQ(bad.problems.size(), 3u);
  std::string all;
  for (const auto& p : bad.problems) all += p + "\n";
  EXPECT_NE(all.find("b.conf:5: unknown key `sourcesilence`"), std::string::npos) << all;
  EXPECT_NE(all.find("b.conf:6: `max_incoming` takes one value, not an array"), std::string::npos) << all;
  EXPECT_NE(all.find("b.conf:7: bad device `a b`"), std::string::npos) << all;
  auto problems = many->problems();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("bad firewall `closed`"), std::string::npos);
  // Without a report, the first problem is the error.
  EXPECT_FALSE(AgentConfig::parse(base + "max_incoming = [4]\n", "c.conf").ok());
}

// Every problem of a config, not only the first.
TEST_F(ConfigTest, ProblemsListsEveryBadValue) {
  auto c = load("firewall = \"x\"\nmax_incoming = \"0\"\ndata_link_cipher = \"rot13\"\nlog_level = \"loud\"\n");
  ASSERT_TRUE(c.ok());
  auto p = c->problems();
  EXPECT_EQ(p.size(), 4u);
  for (const auto& line : p) EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(c->validate().message(), p.front());
}

// lxmigd --check-config: the file's problems in line order, then those of
// values, then the cluster file's; a missing cluster file is a warning.
TEST_F(ConfigTest, CheckConfigFileListsProblemsByLine) {
  const std::string path = tmp_.path() + "/check.conf";
  ASSERT_TRUE(writeFileAtomic(path,
                              "zzz = 1\nnode = \"n1\"\naaa = 2\nfirewall = \"closed\"\nstate_dir = \"/x\"\n"
                              "container_subnet = \"10.200.1.0/24\"\ngateway = \"10.200.0.1\"\n"
                              "cluster = \"" +
                                  tmp_.path() + "/none.toml\"\n")
                  .ok());
  auto check = checkConfigFile(path);
  ASSERT_TRUE(check.ok()) << check.status().message();
  ASSERT_EQ(check->errors.size(), 3u);
  EXPECT_EQ(check->errors[0], path + ":1: unknown key `zzz`");
  EXPECT_EQ(check->errors[1], path + ":3: unknown key `aaa`");
  EXPECT_NE(check->errors[2].find("bad firewall `closed`"), std::string::npos) << check->errors[2];
  ASSERT_EQ(check->warnings.size(), 1u);
  EXPECT_NE(check->warnings[0].find("none.toml does not exist"), std::string::npos) << check->warnings[0];

  ASSERT_TRUE(writeFileAtomic(tmp_.path() + "/broken.conf", "node = \n").ok());
  EXPECT_FALSE(checkConfigFile(tmp_.path() + "/broken.conf").ok()) << "not TOML: an error, not a list";
  EXPECT_FALSE(checkConfigFile(tmp_.path() + "/missing.conf").ok());
}

}  // namespace
}  // namespace lxmig::node
