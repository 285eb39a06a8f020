#include "lxmig/net/conntrack.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <unordered_set>

#include "lxmig/base/fd.h"

namespace lxmig::net {
namespace {

using Socket = UniqueHandle<mnl_socket, mnl_socket_close>;
using Conntrack = UniqueHandle<nf_conntrack, nfct_destroy>;

// Messages per send: well inside the socket's send buffer.
constexpr size_t kBatchBytes = 96 * 1024;
// Receive buffer: the kernel sizes a dump's messages by the reader's buffer
// (up to 32 KiB); libmnl's default (one page) means eight times the dump
// calls, each restarting its walk of the hash table.
constexpr size_t kRecvBytes = 64 * 1024;
// Imports this large are split over threads.
constexpr size_t kParallelFrom = 4096;

Result<Socket> openSocket() {
  Socket s(mnl_socket_open(NETLINK_NETFILTER));
  if (!s) return Status::fromErrno("open netlink socket", "NETLINK_NETFILTER");
  if (mnl_socket_bind(s.get(), 0, MNL_SOCKET_AUTOPID) < 0) return Status::fromErrno("bind netlink socket", "conntrack");
  // Room for the error replies of a whole batch, and for dumps.
  int big = 8 << 20;
  (void)::setsockopt(mnl_socket_get_fd(s.get()), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  (void)::setsockopt(mnl_socket_get_fd(s.get()), SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  return s;
}

nlmsghdr* putHeader(char* buf, uint16_t type, uint16_t flags, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = AF_INET;
  nfh->version = NFNETLINK_V0;
  nfh->res_id = 0;
  return nlh;
}

std::unordered_set<uint32_t> parseIps(const std::vector<std::string>& ips, Status* st) {
  std::unordered_set<uint32_t> out;
  for (const auto& ip : ips) {
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) {
      *st = invalidArgument("not an IPv4 address: " + ip);
      return {};
    }
    out.insert(a.s_addr);
  }
  return out;
}

// The original tuple (and zone): what identifies an entry to the kernel.
void setTuple(nf_conntrack* ct, const ConntrackEntry& e) {
  nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, AF_INET);
  nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, e.proto);
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, e.origSrc);
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, e.origDst);
  if (e.proto == IPPROTO_ICMP) {
    nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, e.icmpType);
    nfct_set_attr_u8(ct, ATTR_ICMP_CODE, e.icmpCode);
    nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(e.icmpId));
  } else {
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(e.origSport));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(e.origDport));
  }
  if (e.zone != 0) nfct_set_attr_u16(ct, ATTR_ZONE, e.zone);
}

void toKernel(nf_conntrack* ct, const ConntrackEntry& e) {
  setTuple(ct, e);
  nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);
  nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, e.proto);
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, e.replSrc);
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, e.replDst);
  if (e.proto != IPPROTO_ICMP) {
    nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(e.replSport));
    nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(e.replDport));
  }
  // NAT: the reply tuple is not the inverted original. The kernel derives
  // the mapping from these attributes, as it did on the source.
  if (e.replSrc != e.origDst) nfct_set_attr_u32(ct, ATTR_DNAT_IPV4, e.replSrc);
  if (e.replDst != e.origSrc) nfct_set_attr_u32(ct, ATTR_SNAT_IPV4, e.replDst);
  if (e.proto != IPPROTO_ICMP) {
    if (e.replSport != e.origDport) nfct_set_attr_u16(ct, ATTR_DNAT_PORT, htons(e.replSport));
    if (e.replDport != e.origSport) nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(e.replDport));
  }
  // Only the bits userspace may set; the NAT bits follow from the mapping.
  nfct_set_attr_u32(ct, ATTR_STATUS, e.status & (IPS_SEEN_REPLY | IPS_ASSURED));
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, std::max<uint32_t>(e.timeout, 1));
  if (e.mark != 0) nfct_set_attr_u32(ct, ATTR_MARK, e.mark);
  if (e.proto == IPPROTO_TCP) {
    // Liberal window tracking both ways: the entry comes without the
    // windows the source's conntrack saw, so the kernel learns them from the
    // first packets; when the first is the restored socket's window probe
    // (sequence snd_una - 1), the client's acknowledgement of data the
    // frozen copy sent just before the freeze looks beyond the window and
    // every packet of the flow would be INVALID (dropped by a strict
    // firewall) until the container sent that data again, ~1 s later (seen
    // in the benchmark). The sequence checks are the container's TCP stack's.
    const uint8_t liberal = IP_CT_TCP_FLAG_BE_LIBERAL;
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, e.tcpState);
    nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, e.tcpFlagsOrig | liberal);
    nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, e.tcpFlagsOrig | liberal);
    nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, e.tcpFlagsRepl | liberal);
    nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, e.tcpFlagsRepl | liberal);
    nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_ORIG, e.tcpWscaleOrig);
    nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_REPL, e.tcpWscaleRepl);
  }
}

struct BatchError {
  uint32_t seq;
  int err;  // positive errno
};

// Sends messages in batches; each message is built by build(i, buf) and
// gets sequence number base+i. Returns the kernel's error replies. The
// kernel handles a batch inside sendmsg, so its errors are queued by the
// time send returns: a non-blocking drain after each batch sees them all.
template <typename Build>
Result<std::vector<BatchError>> sendBatched(mnl_socket* s, size_t n, uint32_t base, Build build) {
  std::vector<BatchError> errors;
  std::vector<char> buf(kBatchBytes + MNL_SOCKET_BUFFER_SIZE);
  std::vector<char> rbuf(kRecvBytes);
  const int fd = mnl_socket_get_fd(s);
  auto drain = [&]() -> Status {
    for (;;) {
      ssize_t got = ::recv(fd, rbuf.data(), rbuf.size(), MSG_DONTWAIT);
      if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return okStatus();
        if (errno == EINTR) continue;
        return Status::fromErrno("read conntrack replies", "netlink");
      }
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(nlh, static_cast<int>(got));
           nlh = mnl_nlmsg_next(nlh, reinterpret_cast<int*>(&got))) {
        if (nlh->nlmsg_type != NLMSG_ERROR) continue;
        auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0) errors.push_back({nlh->nlmsg_seq, -err->error});
      }
    }
  };
  size_t i = 0;
  while (i < n) {
    size_t used = 0;
    while (i < n && used < kBatchBytes) {
      nlmsghdr* nlh = build(i, buf.data() + used, base + static_cast<uint32_t>(i));
      used += NLMSG_ALIGN(nlh->nlmsg_len);
      ++i;
    }
    if (mnl_socket_sendto(s, buf.data(), used) < 0) return Status::fromErrno("send conntrack batch", "netlink");
    LXMIG_RETURN_IF_ERROR(drain());
  }
  return errors;
}

// The addresses of an entry's two tuples, read straight from the message:
// cheap enough to skip the entries of other containers unparsed.
// Netlink attributes, walked inline: the dump of a large table is parsed
// entry by entry, and libmnl's out-of-line helpers (and building a
// libnetfilter_conntrack object per entry) were most of the user time.
template <typename Fn>
inline void forEachAttr(const char* p, const char* end, Fn fn) {
  while (end - p >= static_cast<ptrdiff_t>(sizeof(nlattr))) {
    auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < sizeof(nlattr) || a->nla_len > end - p) return;
    fn(a->nla_type & NLA_TYPE_MASK, p + NLA_HDRLEN, a->nla_len - NLA_HDRLEN);
    p += NLA_ALIGN(a->nla_len);
  }
}
template <typename Fn>
inline void forEachNested(const char* payload, size_t len, Fn fn) {
  forEachAttr(payload, payload + len, fn);
}
inline uint8_t u8(const char* p) { return static_cast<uint8_t>(p[0]); }
inline uint16_t be16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return ntohs(v);
}
inline uint32_t be32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}
inline uint32_t raw32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One ctnetlink tuple (CTA_TUPLE_ORIG or _REPLY) into the entry.
void parseTuple(const char* p, size_t len, bool reply, ConntrackEntry* e) {
  forEachNested(p, len, [&](int type, const char* v, size_t n) {
    if (type == CTA_TUPLE_IP) {
      forEachNested(v, n, [&](int k, const char* x, size_t xn) {
        if (xn != 4) return;
        if (k == CTA_IP_V4_SRC) (reply ? e->replSrc : e->origSrc) = raw32(x);
        if (k == CTA_IP_V4_DST) (reply ? e->replDst : e->origDst) = raw32(x);
      });
    } else if (type == CTA_TUPLE_PROTO) {
      forEachNested(v, n, [&](int k, const char* x, size_t xn) {
        if (k == CTA_PROTO_NUM && xn >= 1 && !reply) e->proto = u8(x);
        else if (k == CTA_PROTO_SRC_PORT && xn >= 2) (reply ? e->replSport : e->origSport) = be16(x);
        else if (k == CTA_PROTO_DST_PORT && xn >= 2) (reply ? e->replDport : e->origDport) = be16(x);
        else if (!reply && k == CTA_PROTO_ICMP_ID && xn >= 2) e->icmpId = be16(x);
        else if (!reply && k == CTA_PROTO_ICMP_TYPE && xn >= 1) e->icmpType = u8(x);
        else if (!reply && k == CTA_PROTO_ICMP_CODE && xn >= 1) e->icmpCode = u8(x);
      });
    }
  });
}

// One dumped entry; false when it is not IPv4.
bool parseEntry(const nlmsghdr* m, ConntrackEntry* e) {
  auto* nfh = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(m));
  if (nfh->nfgen_family != AF_INET) return false;
  const char* p = static_cast<const char*>(mnl_nlmsg_get_payload_offset(m, sizeof(nfgenmsg)));
  const char* end = reinterpret_cast<const char*>(m) + m->nlmsg_len;
  forEachAttr(p, end, [&](int type, const char* v, size_t n) {
    switch (type) {
      case CTA_TUPLE_ORIG:
        parseTuple(v, n, false, e);
        break;
      case CTA_TUPLE_REPLY:
        parseTuple(v, n, true, e);
        break;
      case CTA_STATUS:
        if (n >= 4) e->status = be32(v);
        break;
      case CTA_TIMEOUT:
        if (n >= 4) e->timeout = be32(v);
        break;
      case CTA_MARK:
        if (n >= 4) e->mark = be32(v);
        break;
      case CTA_ZONE:
        if (n >= 2) e->zone = be16(v);
        break;
      case CTA_PROTOINFO:
        forEachNested(v, n, [&](int k, const char* x, size_t xn) {
          if (k != CTA_PROTOINFO_TCP) return;
          forEachNested(x, xn, [&](int t, const char* y, size_t yn) {
            if (yn < 1) return;
            if (t == CTA_PROTOINFO_TCP_STATE) e->tcpState = u8(y);
            else if (t == CTA_PROTOINFO_TCP_WSCALE_ORIGINAL) e->tcpWscaleOrig = u8(y);
            else if (t == CTA_PROTOINFO_TCP_WSCALE_REPLY) e->tcpWscaleRepl = u8(y);
            else if (t == CTA_PROTOINFO_TCP_FLAGS_ORIGINAL)
              e->tcpFlagsOrig = u8(y);  // struct nf_ct_tcp_flags: flags first
            else if (t == CTA_PROTOINFO_TCP_FLAGS_REPLY) e->tcpFlagsRepl = u8(y);
          });
        });
        break;
      default:
        break;
    }
  });
  return true;
}

Result<ConntrackEntries> dumpMatching(const std::unordered_set<uint32_t>& ips) {
  LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
  std::vector<char> buf(kRecvBytes);
  const uint32_t seq = static_cast<uint32_t>(::getpid()) ^ 0x5a5a;
  nlmsghdr* nlh = putHeader(buf.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
  if (mnl_socket_sendto(s.get(), nlh, nlh->nlmsg_len) < 0) return Status::fromErrno("send conntrack dump", "netlink");
  struct Ctx {
    const std::unordered_set<uint32_t>* ips;
    ConntrackEntries out;
  } ctx{&ips, {}};
  auto cb = [](const nlmsghdr* m, void* data) -> int {
    auto* c = static_cast<Ctx*>(data);
    ConntrackEntry e;
    if (!parseEntry(m, &e)) return MNL_CB_OK;
    const auto& want = *c->ips;
    if (want.count(e.origSrc) || want.count(e.origDst) || want.count(e.replSrc) || want.count(e.replDst))
      c->out.push_back(e);
    return MNL_CB_OK;
  };
  const unsigned portid = mnl_socket_get_portid(s.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("read conntrack dump", "netlink");
    }
    int rc = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, cb, &ctx);
    if (rc == MNL_CB_ERROR) return Status::fromErrno("conntrack dump", "netlink");
    if (rc == MNL_CB_STOP) break;
  }
  return std::move(ctx.out);
}

// Creates entries[from, to) on a socket of its own; indexes of entries
// that exist already go to `exist`.
Status createRange(const ConntrackEntries& entries, size_t from, size_t to, std::vector<size_t>* exist) {
  LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
  auto build = [&](size_t i, char* at, uint32_t seq) {
    nlmsghdr* nlh = putHeader(at, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, seq);
    Conntrack c(nfct_new());
    toKernel(c.get(), entries[from + i]);
    nfct_nlmsg_build(nlh, c.get());
    return nlh;
  };
  LXMIG_ASSIGN_OR_RETURN(auto errs, sendBatched(s.get(), to - from, 1, build));
  for (const auto& e : errs) {
    size_t i = from + e.seq - 1;
    if (i >= to) continue;
    if (e.err == EEXIST) exist->push_back(i);
    else return Status(Code::kInternal, "create conntrack entry " + describe(entries[i]) + ": " + std::strerror(e.err));
  }
  return okStatus();
}

}  // namespace

std::string describe(const ConntrackEntry& e) {
  auto ip = [](uint32_t a) {
    char b[INET_ADDRSTRLEN] = {};
    in_addr x{};
    x.s_addr = a;
    ::inet_ntop(AF_INET, &x, b, sizeof b);
    return std::string(b);
  };
  std::string proto = e.proto == IPPROTO_TCP    ? "tcp"
                      : e.proto == IPPROTO_UDP  ? "udp"
                      : e.proto == IPPROTO_ICMP ? "icmp"
                                                : "proto " + std::to_string(e.proto);
  if (e.proto == IPPROTO_ICMP)
    return proto + " " + ip(e.origSrc) + " -> " + ip(e.origDst) + " id " + std::to_string(e.icmpId);
  return proto + " " + ip(e.origSrc) + ":" + std::to_string(e.origSport) + " -> " + ip(e.origDst) + ":" +
         std::to_string(e.origDport);
}

// Record layout (little-endian), version 1: 4 addresses (network order as
// 4 raw bytes each), 4 ports, status, timeout, mark, zone, icmp id, proto,
// icmp type and code, TCP state, flags and window scales.
namespace {
constexpr uint8_t kWireVersion = 1;
constexpr size_t kRecord = 4 * 4 + 4 * 2 + 3 * 4 + 2 * 2 + 1 + 2 + 5;

void put16(char*& p, uint16_t v) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>(v >> 8);
  p += 2;
}
void put32(char*& p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  p += 4;
}
uint16_t get16(const unsigned char*& p) {
  uint16_t v = static_cast<uint16_t>(p[0] | (p[1] << 8));
  p += 2;
  return v;
}
uint32_t get32(const unsigned char*& p) {
  uint32_t v = uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
  p += 4;
  return v;
}
void putAddr(char*& p, uint32_t netOrder) {
  std::memcpy(p, &netOrder, 4);
  p += 4;
}
uint32_t getAddr(const unsigned char*& p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  p += 4;
  return v;
}
}  // namespace

std::string encodeConntrack(const ConntrackEntries& entries) {
  std::string out(1 + entries.size() * kRecord, '\0');
  out[0] = static_cast<char>(kWireVersion);
  char* p = out.data() + 1;
  for (const auto& e : entries) {
    putAddr(p, e.origSrc);
    putAddr(p, e.origDst);
    putAddr(p, e.replSrc);
    putAddr(p, e.replDst);
    put16(p, e.origSport);
    put16(p, e.origDport);
    put16(p, e.replSport);
    put16(p, e.replDport);
    put32(p, e.status);
    put32(p, e.timeout);
    put32(p, e.mark);
    put16(p, e.zone);
    put16(p, e.icmpId);
    for (uint8_t b : {e.proto, e.icmpType, e.icmpCode, e.tcpState, e.tcpFlagsOrig, e.tcpFlagsRepl, e.tcpWscaleOrig,
                      e.tcpWscaleRepl})
      *p++ = static_cast<char>(b);
  }
  return out;
}

Result<ConntrackEntries> decodeConntrack(std::string_view wire) {
  if (wire.empty()) return ConntrackEntries{};
  if (static_cast<uint8_t>(wire[0]) != kWireVersion)
    return invalidArgument("conntrack records of unknown version " + std::to_string(uint8_t(wire[0])));
  if ((wire.size() - 1) % kRecord != 0) return invalidArgument("conntrack records truncated");
  ConntrackEntries out((wire.size() - 1) / kRecord);
  auto* p = reinterpret_cast<const unsigned char*>(wire.data()) + 1;
  for (auto& e : out) {
    e.origSrc = getAddr(p);
    e.origDst = getAddr(p);
    e.replSrc = getAddr(p);
    e.replDst = getAddr(p);
    e.origSport = get16(p);
    e.origDport = get16(p);
    e.replSport = get16(p);
    e.replDport = get16(p);
    e.status = get32(p);
    e.timeout = get32(p);
    e.mark = get32(p);
    e.zone = get16(p);
    e.icmpId = get16(p);
    for (uint8_t* b : {&e.proto, &e.icmpType, &e.icmpCode, &e.tcpState, &e.tcpFlagsOrig, &e.tcpFlagsRepl,
                       &e.tcpWscaleOrig, &e.tcpWscaleRepl})
      *b = *p++;
  }
  return out;
}

Result<ConntrackEntries> exportConntrack(const std::vector<std::string>& ips) {
  Status st;
  auto set = parseIps(ips, &st);
  if (!st.ok()) return st;
  if (set.empty()) return ConntrackEntries{};
  auto r = dumpMatching(set);
  if (!r.ok()) return r.status().withContext("export conntrack entries");
  return r;
}

Result<ConntrackImportStats> importConntrack(const ConntrackEntries& entries) {
  ConntrackImportStats stats;
  if (entries.empty()) return stats;
  size_t threads = entries.size() >= kParallelFrom ? std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4) : 1;
  std::vector<std::vector<size_t>> exist(threads);
  std::vector<Status> results(threads);
  {
    std::vector<std::thread> pool;
    const size_t per = (entries.size() + threads - 1) / threads;
    for (size_t t = 0; t < threads; ++t) {
      size_t from = t * per, to = std::min(entries.size(), from + per);
      // A new thread starts in its creator's network namespace (setns acts
      // per thread), so each opens its socket where the caller is.
      pool.emplace_back([&, t, from, to] { results[t] = createRange(entries, from, to, &exist[t]); });
    }
    for (auto& th : pool) th.join();
  }
  for (const auto& r : results)
    if (!r.ok()) return r;
  // Entries that exist already (a flow that reached this node first) are
  // updated in place: timeout, mark.
  ConntrackEntries again;
  for (const auto& v : exist)
    for (size_t i : v) again.push_back(entries[i]);
  stats.created = entries.size() - again.size();
  for (const auto& v : exist) stats.refreshed.insert(stats.refreshed.end(), v.begin(), v.end());
  if (!again.empty()) {
    LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
    auto upd = [&](size_t i, char* at, uint32_t seq) {
      nlmsghdr* nlh = putHeader(at, IPCTNL_MSG_CT_NEW, 0, seq);
      Conntrack one(nfct_new());
      setTuple(one.get(), again[i]);
      nfct_set_attr_u32(one.get(), ATTR_TIMEOUT, std::max<uint32_t>(again[i].timeout, 1));
      if (again[i].mark != 0) nfct_set_attr_u32(one.get(), ATTR_MARK, again[i].mark);
      nfct_nlmsg_build(nlh, one.get());
      return nlh;
    };
    LXMIG_ASSIGN_OR_RETURN(auto errs2, sendBatched(s.get(), again.size(), 1, upd));
    for (const auto& e : errs2) {
      size_t i = e.seq - 1;
      if (i < again.size() && e.err != ENOENT)
        return Status(Code::kInternal, "update conntrack entry " + describe(again[i]) + ": " + std::strerror(e.err));
    }
    stats.updated = again.size();
  }
  return stats;
}

Result<size_t> deleteConntrackEntries(const ConntrackEntries& entries) {
  if (entries.empty()) return size_t{0};
  LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
  auto del = [&](size_t i, char* at, uint32_t seq) {
    nlmsghdr* nlh = putHeader(at, IPCTNL_MSG_CT_DELETE, 0, seq);
    Conntrack one(nfct_new());
    setTuple(one.get(), entries[i]);
    nfct_nlmsg_build(nlh, one.get());
    return nlh;
  };
  LXMIG_ASSIGN_OR_RETURN(auto errs, sendBatched(s.get(), entries.size(), 1, del));
  size_t gone = entries.size();
  for (const auto& e : errs) {
    if (e.err == ENOENT) {
      --gone;
      continue;
    }
    size_t i = e.seq - 1;
    return Status(Code::kInternal, "delete conntrack entry " + (i < entries.size() ? describe(entries[i]) : "?") +
                                       ": " + std::strerror(e.err));
  }
  return gone;
}

Result<size_t> deleteConntrack(const std::vector<std::string>& ips) {
  LXMIG_ASSIGN_OR_RETURN(auto entries, exportConntrack(ips));
  return deleteConntrackEntries(entries);
}

}  // namespace lxmig::net
