// A small client of etcd's v3 API over gRPC (stubs from proto/etcd/, the
// part of etcd's own API lxmig speaks): keys, prefixes, leases and the one
// transaction a lock needs. Every call has a deadline; an endpoint that
// does not answer hands the call to the next one.
//
//   auto e = Etcd::connect({"http://127.0.0.1:2379"}, {}, 3000);
//   int64_t lease = *(*e)->grant(10);
//   (*e)->put("/lxmig/nodes/n1", "10.0.0.11:7443", lease);
//   std::string holder = *(*e)->createIfAbsent("/lxmig/locks/x", "me", lease);  // "" = created
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::sched {

struct EtcdTls {
  std::string caFile, certFile, keyFile;  // empty caFile: plain http
};

class Etcd {
 public:
  // `endpoints`: "http://host:port" (or https with `tls`), checked here.
  static Result<std::unique_ptr<Etcd>> connect(const std::vector<std::string>& endpoints, const EtcdTls& tls,
                                               int deadlineMs);
  ~Etcd();

  // A lease of `ttlSeconds`; its id.
  Result<int64_t> grant(int64_t ttlSeconds);
  // Renews `lease`: its remaining TTL in seconds; NotFound once it expired.
  Result<int64_t> keepAlive(int64_t lease);
  Status revoke(int64_t lease);
  // key = value, bound to `lease` (0: none).
  Status put(const std::string& key, const std::string& value, int64_t lease);
  // Every key under `prefix` with its value, in key order (at most `limit`).
  Result<std::vector<std::pair<std::string, std::string>>> list(const std::string& prefix, int64_t limit = 100000);
  // Creates key = value bound to `lease` unless the key exists, atomically:
  // "" when created, else the existing value.
  Result<std::string> createIfAbsent(const std::string& key, const std::string& value, int64_t lease);
  // Deletes `key` when its value is `value`; whether it did.
  Result<bool> eraseIf(const std::string& key, const std::string& value);

 private:
  struct Impl;
  explicit Etcd(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "http://host:port" -> "host:port"; InvalidArgument naming the value.
Result<std::pair<std::string, bool>> parseEtcdEndpoint(const std::string& url);  // (host:port, https)

}  // namespace lxmig::sched
