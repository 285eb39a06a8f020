// The agent's config and the cluster inventory (node::AgentConfig::parse,
// node::ClusterConfig::parse) on the same text. An agent config takes
// exactly the TOML's keys (the rest keep their defaults); errors name the
// line; validate() is one line, and what it accepts is usable as is: whole seconds that fit, CIDR
// blocks, a data link address that splits. Every inventory node has a name
// and an address or a socket, as written.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "fuzz_check.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/toml.h"
#include "lxmig/node/config.h"
#include "lxmig/transport/data_link.h"

namespace {

void checkAgent(const std::string& text, const lxmig::Toml* kv) {
  auto c = lxmig::node::AgentConfig::parse(text, "agent.conf");
  if (!kv) {
    LXMIG_FUZZ_CHECK(!c.ok());
    return;
  }
  if (!c.ok()) {
    // An unknown key, an array where one value goes, a bad device: with
    // its line, one line.
    LXMIG_FUZZ_CHECK(lxmig::startsWith(c.status().message(), "agent.conf:") &&
                     c.status().message().find('\n') == std::string::npos);
    return;
  }
  const lxmig::node::AgentConfig defaults;
  auto field = [&](const char* key, const std::string& got, const std::string& fallback) {
    LXMIG_FUZZ_CHECK(got == kv->get(key, fallback));
  };
  field("node", c->node, defaults.node);
  field("listen", c->listen, defaults.listen);
  field("socket", c->socket, defaults.socket);
  field("state_dir", c->stateDir, defaults.stateDir);
  field("container_subnet", c->containerSubnet, defaults.containerSubnet);
  field("cluster_prefix", c->clusterPrefix, defaults.clusterPrefix);
  field("gateway", c->gateway, defaults.gateway);
  field("data_listen", c->dataListen, defaults.dataListen);
  field("cluster", c->clusterFile, defaults.clusterFile);
  field("source_silence", c->sourceSilence, defaults.sourceSilence);
  field("data_link_cipher", c->dataLinkCipher, defaults.dataLinkCipher);
  LXMIG_FUZZ_CHECK(c->failAt.empty());  // never from the file

  const lxmig::Status st = c->validate();
  const std::string data = c->dataAddress();
  if (!st.ok()) {
    LXMIG_FUZZ_CHECK(!st.message().empty() && st.message().find('\n') == std::string::npos);
    return;
  }
  // Accepted: the values mean what they say.
  uint64_t seconds = 0;
  LXMIG_FUZZ_CHECK(lxmig::parseUint64(c->sourceSilence, &seconds) && seconds >= 1);
  LXMIG_FUZZ_CHECK(static_cast<uint64_t>(c->sourceSilenceSeconds()) == seconds);
  auto subnet = lxmig::node::parseCidr(c->containerSubnet);
  LXMIG_FUZZ_CHECK(subnet.ok() && subnet->second >= 0 && subnet->second <= 32);
  LXMIG_FUZZ_CHECK(lxmig::node::parseCidr(c->clusterPrefix).ok());
  LXMIG_FUZZ_CHECK(c->firewall == "open" || c->firewall == "strict");
  LXMIG_FUZZ_CHECK(!c->node.empty() && c->node.find('/') == std::string::npos);
  if (c->dataListen == "off") LXMIG_FUZZ_CHECK(data.empty());
  if (!data.empty()) LXMIG_FUZZ_CHECK(lxmig::splitHostPort(data).ok());
}

void checkCluster(const std::string& text, const lxmig::Toml* kv) {
  auto c = lxmig::node::ClusterConfig::parse(text, "cluster.toml");
  if (!kv) {
    LXMIG_FUZZ_CHECK(!c.ok());
    return;
  }
  if (!c.ok()) {
    // A node without an address, or a name outside the grammar: one line.
    LXMIG_FUZZ_CHECK(lxmig::startsWith(c.status().message(), "cluster.toml:") &&
                     c.status().message().find('\n') == std::string::npos);
    return;
  }
  LXMIG_FUZZ_CHECK(c->nodes.size() == kv->tables("node").size());
  for (const auto& [name, peer] : c->nodes) {
    LXMIG_FUZZ_CHECK(!name.empty() && name == peer.name);
    LXMIG_FUZZ_CHECK(!peer.address.empty() || !peer.socket.empty());
    LXMIG_FUZZ_CHECK(peer.address == kv->get("node." + name + ".address"));
    LXMIG_FUZZ_CHECK(peer.socket == kv->get("node." + name + ".socket"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto kv = lxmig::parseToml(text, "fuzz");
  checkAgent(text, kv.ok() ? &*kv : nullptr);
  checkCluster(text, kv.ok() ? &*kv : nullptr);
  // The input with the keys a config needs that it lacks, first (TOML
  // refuses a key twice), so that most inputs reach what validate()
  // accepts, not only its first check.
  static const std::pair<const char*, const char*> kNeeded[] = {{"node", "\"n1\""},
                                                                {"state_dir", "\"/var/lib/x\""},
                                                                {"container_subnet", "\"10.200.1.0/24\""},
                                                                {"gateway", "\"10.200.0.1\""}};
  std::string over;
  for (const auto& [key, value] : kNeeded)
    if (!kv.ok() || (!kv->has(key) && !kv->list(key))) over += std::string(key) + " = " + value + "\n";
  over += text;
  auto kvOver = lxmig::parseToml(over, "fuzz");
  checkAgent(over, kvOver.ok() ? &*kvOver : nullptr);
  return 0;
}
