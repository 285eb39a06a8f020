#include "lxmig/sched/etcd.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>

#include "etcd/rpc.grpc.pb.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/rpc_status.h"

namespace lxmig::sched {

namespace pb = etcdserverpb;

Result<std::pair<std::string, bool>> parseEtcdEndpoint(const std::string& url) {
  const bool https = url.rfind("https://", 0) == 0;
  if (!https && url.rfind("http://", 0) != 0)
    return invalidArgument("etcd endpoint " + quote(url) + " is not http://HOST:PORT or https://HOST:PORT");
  std::string hostPort = url.substr(https ? 8 : 7);
  if (!hostPort.empty() && hostPort.back() == '/') hostPort.pop_back();
  auto hp = splitHostPort(hostPort);
  if (!hp.ok()) return invalidArgument("etcd endpoint " + quote(url) + " has no HOST:PORT: " + hp.status().message());
  if (hp->second == 0) return invalidArgument("etcd endpoint " + quote(url) + " has port 0");
  return std::make_pair(hostPort, https);
}

struct Etcd::Impl {
  struct Endpoint {
    std::string url;
    std::unique_ptr<pb::KV::Stub> kv;
    std::unique_ptr<pb::Lease::Stub> lease;
  };
  std::vector<Endpoint> endpoints;
  std::atomic<size_t> current{0};  // the one that answered last
  int deadlineMs = 3000;

  // Runs `call(endpoint, ctx)` on the current endpoint, then on the others
  // while they are unreachable; the first answer, or the last failure.
  template <typename F>
  Status onAny(const char* what, F&& call) {
    Status last;
    for (size_t tried = 0; tried < endpoints.size(); ++tried) {
      const size_t at = (current.load() + tried) % endpoints.size();
      Endpoint& ep = endpoints[at];
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadlineMs));
      // Waits out the channel's reconnect backoff within the deadline
      // instead of failing at once while a restarted member comes back.
      ctx.set_wait_for_ready(true);
      grpc::Status st = call(ep, ctx);
      if (st.ok()) {
        current = at;
        return okStatus();
      }
      last = Status(codeFromGrpc(st.error_code()), std::string("etcd ") + what + " at " + ep.url + ": " +
                                                       (st.error_message().empty() ? "no answer" : st.error_message()));
      const bool unreachable =
          st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (!unreachable) return last;
    }
    if (last.code() == Code::kDeadlineExceeded) return Status(Code::kUnavailable, last.message());
    return last;
  }
};

Etcd::Etcd(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Etcd::~Etcd() = default;

Result<std::unique_ptr<Etcd>> Etcd::connect(const std::vector<std::string>& endpoints, const EtcdTls& tls,
                                            int deadlineMs) {
  if (endpoints.empty()) return invalidArgument("no etcd endpoint");
  if (endpoints.size() > 16) return invalidArgument("more than 16 etcd endpoints");
  auto impl = std::make_unique<Impl>();
  impl->deadlineMs = deadlineMs;
  std::shared_ptr<grpc::ChannelCredentials> secure;
  for (const auto& url : endpoints) {
    LXMIG_ASSIGN_OR_RETURN(auto ep, parseEtcdEndpoint(url));
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (ep.second) {
      if (!secure) {
        if (tls.caFile.empty())
          return invalidArgument("etcd endpoint " + quote(url) + " is https but no etcd_ca is set");
        grpc::SslCredentialsOptions o;
        LXMIG_ASSIGN_OR_RETURN(o.pem_root_certs, readFile(tls.caFile));
        if (!tls.certFile.empty()) {
          LXMIG_ASSIGN_OR_RETURN(o.pem_cert_chain, readFile(tls.certFile));
          LXMIG_ASSIGN_OR_RETURN(o.pem_private_key, readFile(tls.keyFile));
        }
        secure = grpc::SslCredentials(o);
      }
      creds = secure;
    }
    grpc::ChannelArguments args;
    // An etcd member that restarts is tried again within a second, not
    // after gRPC's default backoff (up to minutes).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(16 << 20);
    auto ch = grpc::CreateCustomChannel(ep.first, creds, args);
    impl->endpoints.push_back({url, pb::KV::NewStub(ch), pb::Lease::NewStub(ch)});
  }
  return std::unique_ptr<Etcd>(new Etcd(std::move(impl)));
}

Result<int64_t> Etcd::grant(int64_t ttlSeconds) {
  pb::LeaseGrantRequest rq;
  rq.set_ttl(ttlSeconds);
  pb::LeaseGrantResponse rp;
  LXMIG_RETURN_IF_ERROR(impl_->onAny("lease grant", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.lease->LeaseGrant(&ctx, rq, &rp);
  }));
  if (!rp.error().empty() || rp.id() == 0)
    return unavailable("etcd lease grant: " + (rp.error().empty() ? std::string("no lease") : rp.error()));
  return rp.id();
}

Result<int64_t> Etcd::keepAlive(int64_t lease) {
  pb::LeaseKeepAliveRequest rq;
  rq.set_id(lease);
  pb::LeaseKeepAliveResponse rp;
  bool answered = false;
  LXMIG_RETURN_IF_ERROR(impl_->onAny("lease keep-alive", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) {
    auto stream = ep.lease->LeaseKeepAlive(&ctx);
    if (stream->Write(rq) && stream->Read(&rp)) answered = true;
    stream->WritesDone();
    ctx.TryCancel();  // one renewal per stream: the server would keep it open
    grpc::Status st = stream->Finish();
    return answered ? grpc::Status::OK : st;
  }));
  if (rp.ttl() <= 0) return notFound("etcd lease " + std::to_string(lease) + " has expired");
  return rp.ttl();
}

Status Etcd::revoke(int64_t lease) {
  pb::LeaseRevokeRequest rq;
  rq.set_id(lease);
  pb::LeaseRevokeResponse rp;
  return impl_->onAny("lease revoke", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) {
    return ep.lease->LeaseRevoke(&ctx, rq, &rp);
  });
}

Status Etcd::put(const std::string& key, const std::string& value, int64_t lease) {
  pb::PutRequest rq;
  rq.set_key(key);
  rq.set_value(value);
  rq.set_lease(lease);
  pb::PutResponse rp;
  return impl_->onAny("put", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Put(&ctx, rq, &rp); });
}

// The end of the range of keys starting with `prefix`.
static std::string prefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Result<std::vector<std::pair<std::string, std::string>>> Etcd::list(const std::string& prefix, int64_t limit) {
  pb::RangeRequest rq;
  rq.set_key(prefix);
  rq.set_range_end(prefixEnd(prefix));
  rq.set_limit(limit);
  pb::RangeResponse rp;
  LXMIG_RETURN_IF_ERROR(
      impl_->onAny("range", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Range(&ctx, rq, &rp); }));
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(rp.kvs_size());
  for (const auto& kv : rp.kvs()) out.emplace_back(kv.key(), kv.value());
  return out;
}

Result<std::string> Etcd::createIfAbsent(const std::string& key, const std::string& value, int64_t lease) {
  pb::TxnRequest rq;
  auto* c = rq.add_compare();
  c->set_key(key);
  c->set_target(pb::Compare::CREATE);
  c->set_result(pb::Compare::EQUAL);
  c->set_create_revision(0);  // the key does not exist
  auto* put = rq.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  rq.add_failure()->mutable_request_range()->set_key(key);
  pb::TxnResponse rp;
  LXMIG_RETURN_IF_ERROR(
      impl_->onAny("txn", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Txn(&ctx, rq, &rp); }));
  if (rp.succeeded()) return std::string();
  if (rp.responses_size() == 1 && rp.responses(0).response_range().kvs_size() == 1) {
    std::string holder = rp.responses(0).response_range().kvs(0).value();
    return holder.empty() ? std::string("(someone)") : holder;
  }
  return std::string("(someone, since released)");
}

Result<bool> Etcd::eraseIf(const std::string& key, const std::string& value) {
  pb::TxnRequest rq;
  auto* c = rq.add_compare();
  c->set_key(key);
  c->set_target(pb::Compare::VALUE);
  c->set_result(pb::Compare::EQUAL);
  c->set_value(value);
  rq.add_success()->mutable_request_delete_range()->set_key(key);
  pb::TxnResponse rp;
  LXMIG_RETURN_IF_ERROR(
      impl_->onAny("txn", [&](Impl::Endpoint& ep, grpc::ClientContext& ctx) { return ep.kv->Txn(&ctx, rq, &rp); }));
  return rp.succeeded();
}

}  // namespace lxmig::sched
