#include "lxmig/sched/cluster_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/sched/etcd.h"

namespace lxmig::sched {

namespace {

constexpr const char* kNodesPrefix = "/lxmig/nodes/";
constexpr const char* kLocksPrefix = "/lxmig/locks/";
constexpr int kCallMs = 3000;

Status checkLockName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 200 && name.front() != '/' && name.find("..") == std::string::npos;
  for (char c : name) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '/' || c == '_' || c == '.';
  if (!ok)
    return invalidArgument("bad lock name " + quote(name) + " (letters, digits, '-', '_', '.', '/', at most 200)");
  return okStatus();
}

}  // namespace

std::string lockKey(const std::string& name) { return kLocksPrefix + name; }
std::string nodeKey(const std::string& node) { return kNodesPrefix + node; }

Result<StoreConfig> StoreConfig::fromValues(const std::string& etcd, const std::string& ca, const std::string& cert,
                                            const std::string& key, const std::string& ttl) {
  StoreConfig c;
  for (auto& e : split(etcd, ',')) {
    std::string url(trim(e));
    if (url.empty()) continue;
    LXMIG_RETURN_IF_ERROR(parseEtcdEndpoint(url).status());
    c.etcd.push_back(url);
  }
  for (const auto* f : {&ca, &cert, &key})
    if (!f->empty()) LXMIG_RETURN_IF_ERROR(checkAbsolutePath(*f));
  if (cert.empty() != key.empty()) return invalidArgument("[store] etcd_cert and etcd_key go together");
  c.ca = ca;
  c.cert = cert;
  c.key = key;
  if (!ttl.empty()) {
    LXMIG_ASSIGN_OR_RETURN(uint64_t t, parseUint(ttl, "[store] ttl", 3, 300));
    c.ttlSeconds = static_cast<int>(t);
  }
  return c;
}

Membership::Membership(const StoreConfig& cfg, std::string node, std::string address, std::unique_ptr<Etcd> etcd)
    : cfg_(cfg), node_(std::move(node)), address_(std::move(address)), etcd_(std::move(etcd)) {}

Result<std::unique_ptr<Membership>> Membership::start(const StoreConfig& cfg, const std::string& node,
                                                      const std::string& address) {
  LXMIG_RETURN_IF_ERROR(checkNodeName(node));
  if (!splitHostPort(address).ok())
    return invalidArgument("node `" + node + "` needs a peer address (listen = HOST:PORT) to register in etcd");
  LXMIG_ASSIGN_OR_RETURN(auto etcd, Etcd::connect(cfg.etcd, {cfg.ca, cfg.cert, cfg.key}, kCallMs));
  std::unique_ptr<Membership> m(new Membership(cfg, node, address, std::move(etcd)));
  m->thread_ = std::thread([p = m.get()] { p->run(); });
  return m;
}

Membership::~Membership() {
  int64_t lease;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    lease = lease_;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (lease != 0) {
    if (Status st = etcd_->revoke(lease); !st.ok())
      LXMIG_LOG(kWarn, "store") << "leaving the cluster store: " << st.toString()
                                << " (the entry expires with its TTL)";
  }
}

bool Membership::registerNode() {
  auto lease = etcd_->grant(cfg_.ttlSeconds);
  if (!lease.ok()) {
    LXMIG_LOG(kWarn, "store") << "registering " << node_ << ": " << lease.status().toString();
    return false;
  }
  if (Status st = etcd_->put(nodeKey(node_), address_, *lease); !st.ok()) {
    LXMIG_LOG(kWarn, "store") << "registering " << node_ << ": " << st.toString();
    (void)etcd_->revoke(*lease);
    return false;
  }
  std::lock_guard lk(mu_);
  lease_ = *lease;
  LXMIG_LOG(kInfo, "store") << "registered " << node_ << " (" << address_ << ") in etcd under lease " << *lease
                            << ", ttl " << cfg_.ttlSeconds << " s";
  return true;
}

void Membership::run() {
  const auto renewEvery = std::chrono::milliseconds(cfg_.ttlSeconds * 1000 / 3);
  auto renewAt = std::chrono::steady_clock::now();
  bool warned = false;
  for (;;) {
    refreshMembers();
    if (const auto now = std::chrono::steady_clock::now(); now < renewAt) {
      std::unique_lock lk(mu_);
      wake_.wait_for(lk, std::min<std::chrono::steady_clock::duration>(renewAt - now, std::chrono::seconds(1)),
                     [&] { return stopping_; });
      if (stopping_) return;
      continue;
    }
    int64_t lease;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      lease = lease_;
    }
    bool ok;
    if (lease == 0) {
      ok = registerNode();
    } else {
      auto ttl = etcd_->keepAlive(lease);
      ok = ttl.ok();
      if (!ok && ttl.status().code() == Code::kNotFound) {
        LXMIG_LOG(kWarn, "store") << node_ << "'s lease expired (etcd unreachable for longer than the ttl): "
                                  << "its locks were released; registering again";
        std::lock_guard lk(mu_);
        lease_ = 0;
        ++lost_;
        renewAt = std::chrono::steady_clock::now();
        continue;
      }
      if (!ok && !warned) LXMIG_LOG(kWarn, "store") << "renewing " << node_ << "'s lease: " << ttl.status().toString();
      if (ok && warned) LXMIG_LOG(kInfo, "store") << "etcd answers again; " << node_ << "'s lease renewed";
      warned = !ok;
    }
    renewAt = std::chrono::steady_clock::now() + (ok ? renewEvery : std::chrono::milliseconds(1000));
  }
}

void Membership::refreshMembers() {
  auto kvs = etcd_->list(kNodesPrefix, 100000);
  std::map<std::string, std::string> out;
  if (kvs.ok()) {
    const std::string prefix = kNodesPrefix;
    for (auto& [k, v] : *kvs) {
      std::string name = k.substr(prefix.size());
      if (!checkNodeName(name).ok() || !splitHostPort(v).ok()) {
        LXMIG_LOG(kWarn, "store") << "ignoring etcd entry " << quote(k) << " = " << quote(v)
                                  << ": not a node name and HOST:PORT";
        continue;
      }
      out[name] = v;
    }
  }
  std::lock_guard lk(mu_);
  if (!kvs.ok()) {
    snapshot_.error = kvs.status().message();
    return;
  }
  snapshot_.members = std::move(out);
  snapshot_.read = true;
  snapshot_.error.clear();
}

Membership::Snapshot Membership::snapshot() const {
  std::lock_guard lk(mu_);
  return snapshot_;
}

Result<std::map<std::string, std::string>> Membership::members() const {
  Snapshot s = snapshot();
  if (!s.error.empty()) return unavailable(s.error);
  if (!s.read) return unavailable("the cluster store's members were not read yet");
  return s.members;
}

Result<std::string> Membership::lock(const std::string& name, const std::string& holder) {
  LXMIG_RETURN_IF_ERROR(checkLockName(name));
  LXMIG_RETURN_IF_ERROR(checkPlainText(holder, "lock holder", 200));
  int64_t lease;
  {
    std::lock_guard lk(mu_);
    lease = lease_;
  }
  if (lease == 0)
    return unavailable("cannot take the cluster lock `" + name + "`: " + node_ + " is not registered in etcd (yet)");
  return etcd_->createIfAbsent(lockKey(name), holder, lease);
}

Status Membership::unlock(const std::string& name, const std::string& holder) {
  LXMIG_RETURN_IF_ERROR(checkLockName(name));
  auto erased = etcd_->eraseIf(lockKey(name), holder);
  if (!erased.ok()) return erased.status();
  if (!*erased) LXMIG_LOG(kWarn, "store") << "lock `" << name << "` was no longer held by " << quote(holder);
  return okStatus();
}

bool Membership::registered() const {
  std::lock_guard lk(mu_);
  return lease_ != 0;
}

int64_t Membership::reRegistrations() const {
  std::lock_guard lk(mu_);
  return lost_;
}

}  // namespace lxmig::sched
