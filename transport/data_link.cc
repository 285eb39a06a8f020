#include "lxmig/transport/data_link.h"

#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <xxhash.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "frames.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/proto/rpc_status.h"

namespace lxmig::transport {
namespace {

using namespace frames;  // this file is the link built on them
constexpr const char* kLog = "datalink";

// Chunks the sender thread may hold ahead of the wire: enough to read the
// next pages while the previous ones are encrypted and sent.
constexpr size_t kQueueBytes = 4 << 20;
// Connections served at once (each has a thread until its handshake, at
// most kHandshakeMs in all, or its stream ends), and of those, how many may
// still be in their handshake: a peer that is not (yet) authenticated can
// hold only these.
constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxHandshakes = 16;
constexpr int kHandshakeMs = 10000;
// How long an answer to a finished or broken stream may take to arrive
// once the link itself has failed.
constexpr int kVerdictGraceMs = 2000;
// How long the receiver may take to answer a complete stream (it folds what
// it received into place first). Both ends may be alive and still stuck;
// this turns that into an error instead of a migration that never ends.
// It grows with the stream (a millisecond per kVerdictBytesPerMs): folding
// a round of 4 GiB into the page store on a slow disk must not hit a fixed
// limit.
constexpr int kVerdictWaitMs = 5 * 60 * 1000;
constexpr uint64_t kVerdictBytesPerMs = 8 << 10;  // 8 MB/s, slower than any disk that holds images

int verdictWaitMs(uint64_t streamBytes) {
  return static_cast<int>(std::min<uint64_t>(kVerdictWaitMs + streamBytes / kVerdictBytesPerMs, INT32_MAX / 2));
}

using SslCtx = UniqueHandle<SSL_CTX, SSL_CTX_free>;
using Ssl = UniqueHandle<SSL, SSL_free>;
using Bio = UniqueHandle<BIO, BIO_free_all>;
using X509Ptr = UniqueHandle<X509, X509_free>;
using PKeyPtr = UniqueHandle<EVP_PKEY, EVP_PKEY_free>;

// Server side of the ALPN choice: OCB when the client offers it and this
// node allows it, else GCM when offered; no ALPN answer at all to a client
// that offers neither (an older lxmigd: GCM, as before).
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outLen, const unsigned char* in, unsigned inLen,
               void* offer) {
  const auto* mine = static_cast<const unsigned char*>(offer);  // kAlpnBoth or kAlpnGcm (no zero byte inside)
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outLen, mine, static_cast<unsigned>(std::strlen(static_cast<const char*>(offer))),
                            in, inLen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// Why an SSL_read/SSL_write/SSL_connect returned `ret`.
Status sslIoError(SSL* ssl, int ret, const std::string& what) {
  int saved = errno;
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_ZERO_RETURN:
      return unavailable(what + ": the peer closed the link");
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (saved == 0 || saved == EPIPE || saved == ECONNRESET)
        return unavailable(what + ": connection closed by the peer");
      if (saved == EAGAIN || saved == EWOULDBLOCK) return unavailable(what + ": timed out");
      return Status(Code::kUnavailable, what + ": " + std::strerror(saved), saved);
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return unavailable(what + ": timed out");
    default:
      return unavailable(what + ": " + sslErrors());
  }
}

Result<SslCtx> makeContext(const TlsIdentity& id, bool server) {
  ERR_clear_error();
  SslCtx ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return internalError("TLS context: " + sslErrors());
  // TLS 1.3 only: its exporter is what keys the frames.
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // One connection per stream, nothing to resume; and no ticket message
  // after the handshake, so the only record after it is the ready frame.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);

  Bio cert(BIO_new_mem_buf(id.certPem.data(), static_cast<int>(id.certPem.size())));
  X509Ptr leaf(cert ? PEM_read_bio_X509(cert.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1)
    return invalidArgument("TLS certificate of this node: " + sslErrors());
  while (X509* extra = PEM_read_bio_X509(cert.get(), nullptr, nullptr, nullptr))
    SSL_CTX_add0_chain_cert(ctx.get(), extra);  // intermediates; the context owns them
  ERR_clear_error();                            // the end of the PEM data
  Bio keyBio(BIO_new_mem_buf(id.keyPem.data(), static_cast<int>(id.keyPem.size())));
  PKeyPtr key(keyBio ? PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return invalidArgument("TLS key of this node: " + sslErrors());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  Bio caBio(BIO_new_mem_buf(id.caPem.data(), static_cast<int>(id.caPem.size())));
  int cas = 0;
  while (X509* ca = caBio ? PEM_read_bio_X509(caBio.get(), nullptr, nullptr, nullptr) : nullptr) {
    X509Ptr own(ca);
    if (X509_STORE_add_cert(store, ca) == 1) ++cas;
  }
  ERR_clear_error();
  if (cas == 0) return invalidArgument("TLS: no certificate in the cluster CA");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  // The frames' AEAD (see Aead). ALPN answers travel encrypted and
  // authenticated in TLS 1.3, so the choice cannot be tampered with.
  const unsigned char* offer = id.gcmOnly ? kAlpnGcm : kAlpnBoth;
  const unsigned offerLen = id.gcmOnly ? sizeof kAlpnGcm - 1 : sizeof kAlpnBoth - 1;
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, const_cast<unsigned char*>(offer));
  } else if (SSL_CTX_set_alpn_protos(ctx.get(), offer, offerLen) != 0) {
    return internalError("TLS ALPN: " + sslErrors());
  }
  return ctx;
}

void setTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A peer that vanishes (power loss, partition) is noticed within about a
// minute instead of never: keepalive probes while idle, and a limit on how
// long sent data may stay unacknowledged. Every frame goes out as one
// sendmsg, so Nagle's algorithm only ever delays the small ones that end a
// stream (the end frame, the verdict) behind the peer's delayed ACK: 40 ms
// of the frozen window in about half the migrations, until TCP_NODELAY.
void setLiveness(int fd) {
  int on = 1, idle = 30, intvl = 10, cnt = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  unsigned userTimeoutMs = 60000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeoutMs, sizeof userTimeoutMs);
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

Status verdictStatus(const v1::DataLinkVerdict& v) {
  if (v.code() == 0) return okStatus();
  auto code = static_cast<Code>(v.code());
  if (v.code() < 0 || v.code() > static_cast<int>(Code::kInternal)) code = Code::kInternal;
  return Status(code, v.message());
}

// ---- buffers ----

constexpr size_t kPoolBuffers = 16;
constexpr size_t kPoolMinBytes = 64 << 10;  // small buffers are not worth keeping

struct BufferPool {
  std::mutex mu;
  std::vector<std::string> free;
};

BufferPool& pool() {
  static BufferPool p;
  return p;
}

// ---- source side ----

class LinkWriter final : public ChunkWriter {
 public:
  explicit LinkWriter(std::unique_ptr<Channel> ch) : ch_(std::move(ch)) {
    sender_ = std::thread([this] {
      ::pthread_setname_np(::pthread_self(), "lxmig-send");  // for top -H and perf
      run();
    });
  }
  ~LinkWriter() override {
    cancel();
    if (sender_.joinable()) sender_.join();
  }

  // Data beyond a frame's limit (kMaxData) goes in several frames, each a
  // chunk at its own offset: the receiver never sees a frame it must refuse.
  bool write(v1::TransferChunk& c) override {
    std::string data = std::move(*c.mutable_data());
    c.clear_data();
    if (data.size() <= kMaxData) return enqueueChunk(c, std::move(data));
    const uint64_t base = c.offset();
    for (size_t off = 0; off < data.size(); off += kMaxData) {
      c.set_offset(base + off);
      if (!enqueueChunk(c, data.substr(off, kMaxData))) return false;
      c.clear_meta();  // the file's header (if any) goes with the first piece
    }
    return true;
  }

  Result<v1::TransferReply> finish() override {
    (void)enqueue(Frame{kEnd, {}, {}});
    if (sender_.joinable()) sender_.join();
    std::lock_guard lk(mu_);
    if (!result_.ok()) return result_;
    return reply_;
  }

  void cancel() override {
    {
      std::lock_guard lk(mu_);
      if (stopped_) return;
      cancelled_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
    ::shutdown(ch_->fd(), SHUT_RDWR);  // wakes the sender out of a blocking send
  }

  const char* kind() const override {
    return ch_->aead() == Aead::kOcb ? "data link (AES-128-OCB)" : "data link (AES-128-GCM)";
  }

 private:
  struct Frame {
    Kind kind;
    std::string header;  // serialised TransferChunk without its data
    std::string data;
  };

  bool enqueue(Frame f) {
    std::unique_lock lk(mu_);
    space_.wait(lk, [&] { return stopped_ || cancelled_ || queued_ < kQueueBytes; });
    if (stopped_ || cancelled_) return false;
    queued_ += f.header.size() + f.data.size();
    q_.push_back(std::move(f));
    ready_.notify_one();
    return true;
  }

  // The receiver's verdict: its reply or its reason for stopping.
  Status readVerdict() {
    std::string header, data;
    LXMIG_ASSIGN_OR_RETURN(Head h, ch_->receive(header, data));
    if (h.kind != kVerdict)
      return internalError("data link " + ch_->peer() + ": unexpected frame instead of the verdict");
    v1::DataLinkVerdict v;
    if (!v.ParseFromString(header)) return internalError("data link " + ch_->peer() + ": malformed verdict");
    reply_ = v.reply();
    return verdictStatus(v);
  }

  void run() {
    Status st;
    for (;;) {
      Frame f;
      {
        std::unique_lock lk(mu_);
        ready_.wait(lk, [&] { return cancelled_ || !q_.empty(); });
        if (cancelled_) break;
        f = std::move(q_.front());
        q_.pop_front();
      }
      // The receiver answers early only when it stopped: take its reason.
      if (readable(ch_->fd())) {
        st = readVerdict();
        if (st.ok()) st = internalError("data link " + ch_->peer() + ": the receiver ended the stream early");
        break;
      }
      const size_t bytes = f.header.size() + f.data.size();
      streamBytes_ += bytes;
      st = ch_->send(f.kind, f.header, f.data);
      if (!st.ok()) {
        // The receiver may have said why before the link went.
        setTimeouts(ch_->fd(), kVerdictGraceMs);
        if (Status v = readVerdict(); !v.ok() && v.code() != Code::kUnavailable) st = v;
        break;
      }
      if (f.kind == kEnd) {
        setTimeouts(ch_->fd(), verdictWaitMs(streamBytes_));
        st = readVerdict();
        break;
      }
      recycleBuffer(std::move(f.data));
      {
        std::lock_guard lk(mu_);
        queued_ -= bytes;
      }
      space_.notify_one();
    }
    {
      std::lock_guard lk(mu_);
      stopped_ = true;
      if (cancelled_) st = cancelled("data link " + ch_->peer() + " cancelled");
      result_ = st;
      q_.clear();
    }
    space_.notify_all();
  }

  bool enqueueChunk(const v1::TransferChunk& header, std::string data) {
    Frame f{kChunk, {}, std::move(data)};
    header.SerializeToString(&f.header);
    return enqueue(std::move(f));
  }

  std::unique_ptr<Channel> ch_;
  std::thread sender_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<Frame> q_;
  size_t queued_ = 0;
  uint64_t streamBytes_ = 0;  // sent so far (the sending thread's alone)
  bool cancelled_ = false, stopped_ = false;
  Status result_;
  v1::TransferReply reply_;
};

class GrpcWriter final : public ChunkWriter {
 public:
  GrpcWriter(v1::Peer::Stub& stub, std::string peer) : peer_(std::move(peer)) { w_ = stub.Transfer(&ctx_, &reply_); }
  ~GrpcWriter() override {
    if (finished_) return;
    ctx_.TryCancel();  // a stream dropped unfinished is cancelled, not left open
    (void)w_->Finish();
  }
  bool write(v1::TransferChunk& c) override {
    if (!c.has_meta()) c.set_xxh64(XXH3_64bits(c.data().data(), c.data().size()));
    bool ok = w_->Write(c);  // serialised: the buffer is free again
    recycleBuffer(std::move(*c.mutable_data()));
    return ok;
  }
  Result<v1::TransferReply> finish() override {
    finished_ = true;
    w_->WritesDone();
    grpc::Status s = w_->Finish();
    if (!s.ok()) return fromPeerGrpc(peer_, s);
    return reply_;
  }
  void cancel() override { ctx_.TryCancel(); }
  const char* kind() const override { return "gRPC"; }

 private:
  std::string peer_;
  grpc::ClientContext ctx_;
  v1::TransferReply reply_;
  bool finished_ = false;
  std::unique_ptr<grpc::ClientWriter<v1::TransferChunk>> w_;
};

// Connects within the time left; Unavailable with the reason otherwise.
Result<UniqueFd> dial(const std::string& host, uint16_t port, int timeoutMs) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int e = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); e != 0)
    return unavailable("resolve `" + host + "`: " + ::gai_strerror(e));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> own(res, ::freeaddrinfo);
  Status last = unavailable("connect " + where + ": no address");
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd) return Status::fromErrno("socket", where);
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = Status(Code::kUnavailable, "connect " + where + ": " + std::strerror(errno), errno);
      continue;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, timeoutMs);
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 0) {
      last = unavailable("connect " + where + ": timed out after " + std::to_string(timeoutMs) + " ms");
      continue;
    }
    if (n < 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      if (err == 0) err = errno;
      last = Status(Code::kUnavailable, "connect " + where + ": " + std::strerror(err), err);
      continue;
    }
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd;
  }
  return last;
}

}  // namespace

std::string takeBuffer(size_t bytes) {
  std::string b;
  {
    auto& p = pool();
    std::lock_guard lk(p.mu);
    if (!p.free.empty()) {
      b = std::move(p.free.back());
      p.free.pop_back();
    }
  }
  b.resize(bytes);  // no fill when the recycled buffer has this size already
  return b;
}

void recycleBuffer(std::string&& buffer) {
  if (buffer.capacity() < kPoolMinBytes) return;
  auto& p = pool();
  std::lock_guard lk(p.mu);
  if (p.free.size() < kPoolBuffers) p.free.push_back(std::move(buffer));
}

std::unique_ptr<ChunkWriter> grpcChunkWriter(v1::Peer::Stub& stub, const std::string& peer) {
  return std::make_unique<GrpcWriter>(stub, peer);
}

Result<std::unique_ptr<ChunkWriter>> connectDataLink(const TlsIdentity& tls, const std::string& host, uint16_t port,
                                                     int timeoutMs) {
  const std::string where = host + ":" + std::to_string(port);
  LXMIG_ASSIGN_OR_RETURN(SslCtx ctx, makeContext(tls, false));
  LXMIG_ASSIGN_OR_RETURN(UniqueFd fd, dial(host, port, timeoutMs));
  setTimeouts(fd.get(), timeoutMs);
  Ssl ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1)
    return internalError("TLS session to " + where + ": " + sslErrors());
  // The peer's certificate must name the host we dialled, like gRPC checks.
  X509_VERIFY_PARAM* vp = SSL_get0_param(ssl.get());
  in6_addr scratch;
  const bool isIp =
      ::inet_pton(AF_INET, host.c_str(), &scratch) == 1 || ::inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
  if (isIp ? X509_VERIFY_PARAM_set1_ip_asc(vp, host.c_str()) != 1
           : X509_VERIFY_PARAM_set1_host(vp, host.c_str(), 0) != 1)
    return internalError("TLS peer check for " + where + ": " + sslErrors());
  if (!isIp) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
  ERR_clear_error();
  errno = 0;
  if (int r = SSL_connect(ssl.get()); r != 1) {
    long vr = SSL_get_verify_result(ssl.get());
    if (vr != X509_V_OK)
      return Status(Code::kPermissionDenied, "TLS handshake with " + where +
                                                 ": peer certificate rejected: " + X509_verify_cert_error_string(vr));
    Status io = sslIoError(ssl.get(), r, "TLS handshake with " + where);
    return Status(Code::kPermissionDenied, io.message());
  }
  // The server's first record says it accepted our certificate (TLS 1.3
  // reports a refused client certificate only on the client's first read).
  char ready[kHeadBytes];
  size_t got = 0;
  ERR_clear_error();
  errno = 0;
  if (int r = SSL_read_ex(ssl.get(), ready, sizeof ready, &got); r != 1 || got != sizeof ready) {
    Status io = sslIoError(ssl.get(), r, "TLS handshake with " + where);
    return Status(Code::kPermissionDenied, io.message());
  }
  Head h = getHead(ready);
  if (h.kind != kReady || h.headerLen != 0 || h.dataLen != 0)
    return internalError("data link to " + where + ": not an lxmig data port");
  // From here on the socket carries frames sealed with exported keys; the
  // TLS session is done.
  auto ch = std::make_unique<Channel>(std::move(fd), "to " + where);
  LXMIG_RETURN_IF_ERROR(ch->keys(ssl.get(), true));
  setTimeouts(ch->fd(), 0);
  setLiveness(ch->fd());
  return std::unique_ptr<ChunkWriter>(std::make_unique<LinkWriter>(std::move(ch)));
}

// ---- receiver side ----

namespace {

// SSL_accept on a blocking socket with one deadline for the whole
// handshake (SO_RCVTIMEO alone restarts with every byte received).
Status acceptWithin(SSL* ssl, int fd, int ms) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return Status::fromErrno("fcntl", "data link");
  const int64_t deadline = monotonicNs() + int64_t{ms} * 1000000;
  Status st;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_accept(ssl);
    if (r == 1) break;
    const int e = SSL_get_error(ssl, r);
    const int64_t left = (deadline - monotonicNs()) / 1000000;
    if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0) {
      st = left <= 0 ? unavailable("TLS handshake: not done within " + std::to_string(ms / 1000) + " s")
                     : sslIoError(ssl, r, "TLS handshake");
      break;
    }
    pollfd p{fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) {
      st = Status::fromErrno("poll", "TLS handshake");
      break;
    }
  }
  if (::fcntl(fd, F_SETFL, flags) != 0 && st.ok()) st = Status::fromErrno("fcntl", "data link");
  return st;
}

// The names a client's certificate carries: its DNS subjectAltNames, then
// its subject's common name.
std::vector<std::string> certificateNames(SSL* ssl) {
  std::vector<std::string> names;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return names;
  if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type != GEN_DNS) continue;
      const auto* s = g->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
  }
  char cn[256];
  if (int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn); n > 0)
    names.emplace_back(cn, static_cast<size_t>(n));
  return names;
}

}  // namespace

struct DataServer::Impl {
  SslCtx ctx;
  UniqueFd listenFd, wake;
  uint16_t port = 0;
  ChunkHandler handler;
  std::thread acceptor;
  PeerAuthorizer authorize;
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
    std::atomic<bool> handshaking{true};
  };
  std::mutex mu;
  std::list<Conn> conns;
  bool stopping = false;

  void acceptLoop();
  void serve(Conn& c, const std::string& from);
  void reap();  // joins finished connection threads (mu held)
};

void DataServer::Impl::reap() {
  for (auto it = conns.begin(); it != conns.end();) {
    if (it->done) {
      it->thread.join();
      it = conns.erase(it);
    } else {
      ++it;
    }
  }
}

void DataServer::Impl::acceptLoop() {
  for (;;) {
    pollfd p[2] = {{listenFd.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LXMIG_LOG(kError, kLog) << Status::fromErrno("poll", "data link listener").toString();
      return;
    }
    if (p[1].revents) return;
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listenFd.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
        LXMIG_LOG(kWarn, kLog) << Status::fromErrno("accept", "data link listener").toString();
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa.ss_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&sa)->sin_addr, host, sizeof host);
    else if (sa.ss_family == AF_INET6)
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&sa)->sin6_addr, host, sizeof host);
    std::lock_guard lk(mu);
    reap();
    if (stopping) {
      ::close(fd);
      return;
    }
    size_t handshaking = 0;
    for (const auto& c : conns) handshaking += c.handshaking ? 1 : 0;
    if (conns.size() >= kMaxConnections || handshaking >= kMaxHandshakes) {
      // Peers open a few streams at a time; this many is someone else.
      LXMIG_LOG(kWarn, kLog) << "data link from " << host << " refused: " << conns.size() << " connections open, "
                             << handshaking << " in their handshake";
      ::close(fd);
      continue;
    }
    Conn& c = conns.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c, from = std::string(host)] {
      ::pthread_setname_np(::pthread_self(), "lxmig-link");
      serve(c, from);
      std::lock_guard lk2(mu);
      ::close(c.fd);
      c.fd = -1;
      c.done = true;
    });
  }
}

void DataServer::Impl::serve(Conn& c, const std::string& from) {
  std::string what = "data link from " + from;
  Ssl ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), c.fd) != 1) {
    LXMIG_LOG(kError, kLog) << what << ": " << sslErrors();
    return;
  }
  // The whole handshake within kHandshakeMs, however slowly the client
  // trickles its bytes in.
  if (Status st = acceptWithin(ssl.get(), c.fd, kHandshakeMs); !st.ok()) {
    long vr = SSL_get_verify_result(ssl.get());
    LXMIG_LOG(kWarn, kLog) << what << " refused: "
                           << (vr != X509_V_OK ? std::string("client certificate: ") + X509_verify_cert_error_string(vr)
                                               : st.message());
    return;
  }
  // A certificate of the cluster CA is not enough: it must name a node of
  // the cluster.
  auto peer = authorize(certificateNames(ssl.get()));
  if (!peer.ok()) {
    LXMIG_LOG(kWarn, kLog) << what << " refused: " << peer.status().message();
    return;
  }
  what += " (" + *peer + ")";
  c.handshaking = false;
  setTimeouts(c.fd, kHandshakeMs);
  char ready[kHeadBytes];
  putHead(ready, {kReady, 0, 0});
  size_t done = 0;
  if (SSL_write_ex(ssl.get(), ready, sizeof ready, &done) != 1) {
    LXMIG_LOG(kWarn, kLog) << sslIoError(ssl.get(), 0, what).toString();
    return;
  }
  // The TLS session only keyed the frames: the socket is the channel's now
  // (the connection thread closes it).
  Channel ch(UniqueFd(::fcntl(c.fd, F_DUPFD_CLOEXEC, 0)), "from " + from);
  if (ch.fd() < 0) return;
  if (auto st = ch.keys(ssl.get(), false); !st.ok()) {
    LXMIG_LOG(kError, kLog) << st.toString();
    return;
  }
  ssl.reset();
  setTimeouts(ch.fd(), 0);
  setLiveness(ch.fd());

  // A reader thread receives and opens frames while the handler writes the
  // previous ones (the page store's writes overlap the socket and the
  // cipher). Up to kQueueBytes wait between the two.
  struct Frame {
    Kind kind = kChunk;
    std::string header, data;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Frame> q;
  size_t queued = 0;
  bool readerDone = false, handlerDone = false, ended = false;
  Status linkErr;
  std::thread reader([&] {
    ::pthread_setname_np(::pthread_self(), "lxmig-recv");
    for (;;) {
      Frame f;
      auto h = ch.receive(f.header, f.data);
      Status st = h.status();
      if (st.ok() && h->kind != kChunk && h->kind != kEnd) st = invalidArgument(what + ": unexpected frame kind");
      std::unique_lock lk(mu);
      if (!st.ok()) {
        linkErr = st;
        break;
      }
      if (h->kind == kEnd) {
        ended = true;
        break;
      }
      if (handlerDone) {  // stopped early: read on and drop, see below
        recycleBuffer(std::move(f.data));
        continue;
      }
      f.kind = static_cast<Kind>(h->kind);
      cv.wait(lk, [&] { return handlerDone || queued < kQueueBytes; });
      if (handlerDone) {
        recycleBuffer(std::move(f.data));
        continue;
      }
      queued += f.data.size();
      q.push_back(std::move(f));
      cv.notify_all();
    }
    std::lock_guard lk(mu);
    readerDone = true;
    cv.notify_all();
  });

  ChunkSource next = [&](v1::TransferChunk& chunk) -> Result<bool> {
    Frame f;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !q.empty() || readerDone; });
      if (q.empty()) {
        if (ended) return false;
        return linkErr.ok() ? unavailable(what + ": link closed") : linkErr;
      }
      f = std::move(q.front());
      q.pop_front();
      queued -= f.data.size();
      cv.notify_all();
    }
    recycleBuffer(std::move(*chunk.mutable_data()));  // the previous chunk's
    if (!chunk.ParseFromString(f.header)) return invalidArgument(what + ": malformed chunk header");
    *chunk.mutable_data() = std::move(f.data);
    return true;
  };
  auto r = handler(*peer, next);
  bool broken = false, cleanEnd = false;
  {
    std::lock_guard lk(mu);
    handlerDone = true;
    for (auto& f : q) recycleBuffer(std::move(f.data));
    q.clear();
    queued = 0;
    broken = !linkErr.ok();
    cleanEnd = ended;
    cv.notify_all();
  }
  v1::DataLinkVerdict v;
  if (r.ok()) {
    *v.mutable_reply() = *r;
  } else {
    v.set_code(static_cast<int>(r.status().code()));
    v.set_message(r.status().message());
    // The source hears it in the verdict, unless the link itself broke.
    LXMIG_LOG(kWarn, kLog) << what << ": stream stopped: " << (broken ? linkErr : r.status()).toString();
  }
  if (!broken && ch.sendMessage(kVerdict, v).ok() && !cleanEnd) {
    // Stopped early: the source sends until it sees the verdict. The reader
    // reads on (and drops) for a while, so that frames in flight do not turn
    // into a reset that would destroy the verdict before it is read.
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::milliseconds(kVerdictGraceMs), [&] { return readerDone; });
  }
  ::shutdown(ch.fd(), SHUT_RDWR);  // ends the reader if it still waits
  reader.join();
}

DataServer::DataServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DataServer::~DataServer() {
  {
    std::lock_guard lk(impl_->mu);
    impl_->stopping = true;
  }
  uint64_t one = 1;
  (void)!::write(impl_->wake.get(), &one, sizeof one);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  {
    std::lock_guard lk(impl_->mu);
    for (auto& c : impl_->conns)
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  }
  // Threads remove nothing from the list themselves; join them all.
  for (auto& c : impl_->conns)
    if (c.thread.joinable()) c.thread.join();
}

uint16_t DataServer::port() const { return impl_->port; }

Result<std::unique_ptr<DataServer>> DataServer::start(const TlsIdentity& tls, const std::string& listen,
                                                      PeerAuthorizer authorize, ChunkHandler handler) {
  LXMIG_ASSIGN_OR_RETURN(auto hp, splitHostPort(listen));
  auto impl = std::make_unique<Impl>();
  LXMIG_ASSIGN_OR_RETURN(impl->ctx, makeContext(tls, true));
  impl->authorize = std::move(authorize);
  impl->handler = std::move(handler);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string host = hp.first == "*" ? "" : hp.first;
  if (int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(hp.second).c_str(), &hints, &res);
      e != 0)
    return invalidArgument("data link address `" + listen + "`: " + ::gai_strerror(e));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> own(res, ::freeaddrinfo);
  impl->listenFd = UniqueFd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!impl->listenFd) return Status::fromErrno("socket", listen);
  int on = 1;
  ::setsockopt(impl->listenFd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(impl->listenFd.get(), res->ai_addr, res->ai_addrlen) != 0) return Status::fromErrno("bind", listen);
  if (::listen(impl->listenFd.get(), 64) != 0) return Status::fromErrno("listen", listen);
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  ::getsockname(impl->listenFd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  impl->port = ntohs(sa.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  impl->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!impl->wake) return Status::fromErrno("eventfd", "data link listener");
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->acceptLoop(); });
  return std::unique_ptr<DataServer>(new DataServer(std::move(impl)));
}

}  // namespace lxmig::transport
