// `lxmig cluster init | add-node NAME --address A | renew NAME`: the
// cluster's certificates, made on this host with OpenSSL's API
// (transport/pki.h), in --dir (default /etc/lxmig/pki, mode 0700):
//
//   ca.crt, ca.key        the cluster CA (init; 10 years)
//   NAME.crt, NAME.key    a node's identity (add-node, renew; 825 days):
//                         CN and DNS:NAME, and its address as IP: or DNS:
//
// Keys are written 0600. Nothing is overwritten: init refuses an existing
// CA and add-node an existing node; renew issues a new pair (a new key
// unless --keep-key) for the same names and keeps the one it replaces as
// NAME.crt.prev / NAME.key.prev. Copy ca.crt and the node's pair to the
// node; ca.key stays with the operator.
#include <sys/stat.h>

#include <ctime>
#include <iostream>

#include "commands/command.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/transport/pki.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct ClusterOptions {
  CLI::App* init = nullptr;
  CLI::App* addNode = nullptr;
  CLI::App* renew = nullptr;
  std::string dir = "/etc/lxmig/pki";
  std::string caName = "lxmig cluster CA";
  std::string node;
  std::string address;
  int caDays = 3650;
  int nodeDays = 825;
  bool keepKey = false;
};

std::string dateOf(int64_t s) {
  std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d", &tm);
  return b;
}

// Writes a pair: the key 0600 first, then the certificate 0644.
Status writePair(const std::string& dir, const std::string& stem, const transport::KeyAndCert& kc) {
  LXMIG_RETURN_IF_ERROR(writeFileAtomic(dir + "/" + stem + ".key", kc.keyPem, 0600));
  return writeFileAtomic(dir + "/" + stem + ".crt", kc.certPem, 0644);
}

Result<transport::KeyAndCert> readPair(const std::string& dir, const std::string& stem) {
  transport::KeyAndCert kc;
  LXMIG_ASSIGN_OR_RETURN(kc.keyPem, readFile(dir + "/" + stem + ".key"));
  LXMIG_ASSIGN_OR_RETURN(kc.certPem, readFile(dir + "/" + stem + ".crt"));
  return kc;
}

int report(const Globals& g, const std::string& what, const std::string& dir, const std::string& stem,
           const std::string& certPem) {
  auto info = transport::describeCert(certPem);
  if (!info.ok()) return fail("cluster " + what, info.status());
  if (g.json) {
    printJson({{"cert", dir + "/" + stem + ".crt"},
               {"key", dir + "/" + stem + ".key"},
               {"common_name", info->commonName},
               {"dns", info->dnsNames},
               {"ips", info->ips},
               {"not_after", dateOf(info->notAfterS)},
               {"sha256", info->sha256}},
              2);
    return 0;
  }
  std::string names;
  for (const auto& d : info->dnsNames) names += (names.empty() ? "" : ", ") + std::string("DNS:") + d;
  for (const auto& i : info->ips) names += (names.empty() ? "" : ", ") + std::string("IP:") + i;
  std::cout << dir << "/" << stem << ".crt: " << info->commonName << (names.empty() ? "" : " (" + names + ")")
            << ", valid until " << dateOf(info->notAfterS) << ", sha256 " << info->sha256.substr(0, 16) << "...\n";
  if (stem != "ca")
    std::cout << "on node " << stem << ": tls_ca = \"" << dir << "/ca.crt\", tls_cert = \"" << dir << "/" << stem
              << ".crt\", tls_key = \"" << dir << "/" << stem << ".key\" (copy the three files there)\n";
  return 0;
}

int init(const Globals& g, const ClusterOptions& o) {
  if (pathExists(o.dir + "/ca.key") || pathExists(o.dir + "/ca.crt"))
    return fail("cluster init", failedPrecondition(o.dir + " already holds a cluster CA: nothing changed"));
  if (Status st = makeDirs(o.dir, 0700); !st.ok()) return fail("cluster init", st);
  auto ca = transport::makeCa(o.caName, o.caDays);
  if (!ca.ok()) return fail("cluster init", ca.status());
  if (Status st = writePair(o.dir, "ca", *ca); !st.ok()) return fail("cluster init", st);
  return report(g, "init", o.dir, "ca", ca->certPem);
}

int addNode(const Globals& g, const ClusterOptions& o) {
  if (Status st = checkNodeName(o.node); !st.ok()) return fail("cluster add-node", st);
  if (pathExists(o.dir + "/" + o.node + ".crt") || pathExists(o.dir + "/" + o.node + ".key"))
    return fail("cluster add-node", alreadyExists("node `" + o.node + "` already has a certificate in " + o.dir +
                                                  " (lxmig cluster renew " + o.node + " replaces it)"));
  auto ca = readPair(o.dir, "ca");
  if (!ca.ok()) return fail("cluster add-node", ca.status().withContext("the cluster CA (lxmig cluster init)"));
  auto kc = transport::issueNodeCert(*ca, o.node, o.address, o.nodeDays);
  if (!kc.ok()) return fail("cluster add-node", kc.status());
  if (Status st = writePair(o.dir, o.node, *kc); !st.ok()) return fail("cluster add-node", st);
  return report(g, "add-node", o.dir, o.node, kc->certPem);
}

int renew(const Globals& g, const ClusterOptions& o) {
  if (Status st = checkNodeName(o.node); !st.ok()) return fail("cluster renew", st);
  auto ca = readPair(o.dir, "ca");
  if (!ca.ok()) return fail("cluster renew", ca.status().withContext("the cluster CA"));
  auto old = readPair(o.dir, o.node);
  if (!old.ok())
    return fail("cluster renew", old.status().withContext("node `" + o.node + "` (lxmig cluster add-node)"));
  std::string address = o.address;
  if (address.empty()) {
    // The same address as before: the IP name, else the DNS name that is not the node's.
    auto info = transport::describeCert(old->certPem);
    if (!info.ok()) return fail("cluster renew", info.status());
    if (!info->ips.empty()) address = info->ips.front();
    for (const auto& d : info->dnsNames)
      if (address.empty() && d != o.node) address = d;
    if (address.empty())
      return fail("cluster renew", invalidArgument("the old certificate names no address: give --address"));
  }
  auto kc = transport::issueNodeCert(*ca, o.node, address, o.nodeDays, o.keepKey ? old->keyPem : "");
  if (!kc.ok()) return fail("cluster renew", kc.status());
  const std::string stem = o.dir + "/" + o.node;
  if (Status st = writeFileAtomic(stem + ".key.prev", old->keyPem, 0600); !st.ok()) return fail("cluster renew", st);
  if (Status st = writeFileAtomic(stem + ".crt.prev", old->certPem, 0644); !st.ok()) return fail("cluster renew", st);
  if (Status st = writePair(o.dir, o.node, *kc); !st.ok()) return fail("cluster renew", st);
  return report(g, "renew", o.dir, o.node, kc->certPem);
}

}  // namespace

Verb addCluster(CLI::App& app) {
  auto* cmd = app.add_subcommand("cluster", "the cluster's certificates: a CA, and one identity per node");
  withExamples(cmd, {"lxmig cluster --dir /etc/lxmig/pki init",
                     "lxmig cluster --dir /etc/lxmig/pki add-node n1 --address 192.0.2.11",
                     "lxmig cluster --dir /etc/lxmig/pki renew n1"});
  cmd->require_subcommand(1);
  auto o = std::make_shared<ClusterOptions>();
  cmd->add_option("--dir", o->dir, "where the certificates live (default /etc/lxmig/pki)");
  o->init = cmd->add_subcommand("init", "make the cluster CA (ca.crt, ca.key)");
  o->init->add_option("--name", o->caName, "the CA's common name");
  o->init->add_option("--days", o->caDays, "validity in days (default 3650)")->check(CLI::Range(1, 36500));
  o->addNode = cmd->add_subcommand("add-node", "issue a node's certificate (NAME.crt, NAME.key)");
  o->addNode->add_option("name", o->node, "node name, as in cluster.toml and agent.conf")->required();
  o->addNode->add_option("--address", o->address, "the node's peer address: IP or host name, no port")->required();
  o->addNode->add_option("--days", o->nodeDays, "validity in days (default 825)")->check(CLI::Range(1, 36500));
  o->renew = cmd->add_subcommand("renew", "replace a node's certificate (the old pair kept as .prev)");
  o->renew->add_option("name", o->node, "node name")->required();
  o->renew->add_option("--address", o->address, "a new address (default: the old certificate's)");
  o->renew->add_option("--days", o->nodeDays, "validity in days (default 825)")->check(CLI::Range(1, 36500));
  o->renew->add_flag("--keep-key", o->keepKey, "keep the node's key (default: a new one)");
  return {cmd, [o](const Globals& g, Connector&) {
            if (o->init->parsed()) return init(g, *o);
            if (o->addNode->parsed()) return addNode(g, *o);
            return renew(g, *o);
          }};
}

}  // namespace lxmig::cli
