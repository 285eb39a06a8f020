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
#include <unordered_set>

#include "lxmig/base/fd.h"

namespace lxmig::net {
namespace {

using Socket = UniqueHandle<mnl_socket, mnl_socket_close>;
using Conntrack = UniqueHandle<nf_conntrack, nfct_destroy>;

// Messages per send: well inside the socket's send buffer.
constexpr size_t kBatchBytes = 96 * 1024;

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

void fromKernel(const nf_conntrack* ct, v1::ConntrackEntry* e) {
  e->set_proto(nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO));
  e->set_orig_src(nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC));
  e->set_orig_dst(nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST));
  e->set_repl_src(nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC));
  e->set_repl_dst(nfct_get_attr_u32(ct, ATTR_REPL_IPV4_DST));
  if (e->proto() == IPPROTO_ICMP) {
    e->set_icmp_type(nfct_get_attr_u8(ct, ATTR_ICMP_TYPE));
    e->set_icmp_code(nfct_get_attr_u8(ct, ATTR_ICMP_CODE));
    e->set_icmp_id(ntohs(nfct_get_attr_u16(ct, ATTR_ICMP_ID)));
  } else {
    e->set_orig_sport(ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC)));
    e->set_orig_dport(ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST)));
    e->set_repl_sport(ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC)));
    e->set_repl_dport(ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST)));
  }
  e->set_status(nfct_get_attr_u32(ct, ATTR_STATUS));
  e->set_timeout(nfct_get_attr_u32(ct, ATTR_TIMEOUT));
  e->set_mark(nfct_get_attr_u32(ct, ATTR_MARK));
  if (nfct_attr_is_set(ct, ATTR_ZONE) > 0) e->set_zone(nfct_get_attr_u16(ct, ATTR_ZONE));
  if (e->proto() == IPPROTO_TCP) {
    e->set_tcp_state(nfct_get_attr_u8(ct, ATTR_TCP_STATE));
    e->set_tcp_flags_orig(nfct_get_attr_u8(ct, ATTR_TCP_FLAGS_ORIG));
    e->set_tcp_flags_repl(nfct_get_attr_u8(ct, ATTR_TCP_FLAGS_REPL));
    e->set_tcp_wscale_orig(nfct_get_attr_u8(ct, ATTR_TCP_WSCALE_ORIG));
    e->set_tcp_wscale_repl(nfct_get_attr_u8(ct, ATTR_TCP_WSCALE_REPL));
  }
}

// The original tuple (and zone): what identifies an entry to the kernel.
void setTuple(nf_conntrack* ct, const v1::ConntrackEntry& e) {
  nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, AF_INET);
  nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, static_cast<uint8_t>(e.proto()));
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, e.orig_src());
  nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, e.orig_dst());
  if (e.proto() == IPPROTO_ICMP) {
    nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, static_cast<uint8_t>(e.icmp_type()));
    nfct_set_attr_u8(ct, ATTR_ICMP_CODE, static_cast<uint8_t>(e.icmp_code()));
    nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(static_cast<uint16_t>(e.icmp_id())));
  } else {
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(static_cast<uint16_t>(e.orig_sport())));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(static_cast<uint16_t>(e.orig_dport())));
  }
  if (e.zone() != 0) nfct_set_attr_u16(ct, ATTR_ZONE, static_cast<uint16_t>(e.zone()));
}

void toKernel(nf_conntrack* ct, const v1::ConntrackEntry& e) {
  setTuple(ct, e);
  nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);
  nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, static_cast<uint8_t>(e.proto()));
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, e.repl_src());
  nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, e.repl_dst());
  if (e.proto() != IPPROTO_ICMP) {
    nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(static_cast<uint16_t>(e.repl_sport())));
    nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(static_cast<uint16_t>(e.repl_dport())));
  }
  // NAT: the reply tuple is not the inverted original. The kernel derives
  // the mapping from these attributes, as it did on the source.
  if (e.repl_src() != e.orig_dst()) nfct_set_attr_u32(ct, ATTR_DNAT_IPV4, e.repl_src());
  if (e.repl_dst() != e.orig_src()) nfct_set_attr_u32(ct, ATTR_SNAT_IPV4, e.repl_dst());
  if (e.proto() != IPPROTO_ICMP) {
    if (e.repl_sport() != e.orig_dport()) nfct_set_attr_u16(ct, ATTR_DNAT_PORT, htons(static_cast<uint16_t>(e.repl_sport())));
    if (e.repl_dport() != e.orig_sport()) nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(static_cast<uint16_t>(e.repl_dport())));
  }
  // Only the bits userspace may set; the NAT bits follow from the mapping.
  nfct_set_attr_u32(ct, ATTR_STATUS, e.status() & (IPS_SEEN_REPLY | IPS_ASSURED));
  nfct_set_attr_u32(ct, ATTR_TIMEOUT, std::max<uint32_t>(e.timeout(), 1));
  if (e.mark() != 0) nfct_set_attr_u32(ct, ATTR_MARK, e.mark());
  if (e.proto() == IPPROTO_TCP) {
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, static_cast<uint8_t>(e.tcp_state()));
    nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, static_cast<uint8_t>(e.tcp_flags_orig()));
    nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, static_cast<uint8_t>(e.tcp_flags_orig()));
    nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, static_cast<uint8_t>(e.tcp_flags_repl()));
    nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, static_cast<uint8_t>(e.tcp_flags_repl()));
    nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_ORIG, static_cast<uint8_t>(e.tcp_wscale_orig()));
    nfct_set_attr_u8(ct, ATTR_TCP_WSCALE_REPL, static_cast<uint8_t>(e.tcp_wscale_repl()));
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
  std::vector<char> rbuf(MNL_SOCKET_BUFFER_SIZE);
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

Result<ConntrackEntries> dumpMatching(const std::unordered_set<uint32_t>& ips) {
  LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
  char buf[MNL_SOCKET_BUFFER_SIZE];
  const uint32_t seq = static_cast<uint32_t>(::getpid()) ^ 0x5a5a;
  nlmsghdr* nlh = putHeader(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
  if (mnl_socket_sendto(s.get(), nlh, nlh->nlmsg_len) < 0) return Status::fromErrno("send conntrack dump", "netlink");
  struct Ctx {
    const std::unordered_set<uint32_t>* ips;
    ConntrackEntries out;
  } ctx{&ips, {}};
  auto cb = [](const nlmsghdr* m, void* data) -> int {
    auto* c = static_cast<Ctx*>(data);
    Conntrack ct(nfct_new());  // fresh: parse sets only the attributes present
    if (!ct || nfct_nlmsg_parse(m, ct.get()) < 0) return MNL_CB_OK;
    if (nfct_get_attr_u8(ct.get(), ATTR_ORIG_L3PROTO) != AF_INET) return MNL_CB_OK;
    const auto& want = *c->ips;
    if (want.count(nfct_get_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC)) ||
        want.count(nfct_get_attr_u32(ct.get(), ATTR_ORIG_IPV4_DST)) ||
        want.count(nfct_get_attr_u32(ct.get(), ATTR_REPL_IPV4_SRC)) ||
        want.count(nfct_get_attr_u32(ct.get(), ATTR_REPL_IPV4_DST)))
      fromKernel(ct.get(), &c->out.emplace_back());
    return MNL_CB_OK;
  };
  const unsigned portid = mnl_socket_get_portid(s.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("read conntrack dump", "netlink");
    }
    int rc = mnl_cb_run(buf, static_cast<size_t>(n), seq, portid, cb, &ctx);
    if (rc == MNL_CB_ERROR) return Status::fromErrno("conntrack dump", "netlink");
    if (rc == MNL_CB_STOP) break;
  }
  return std::move(ctx.out);
}

}  // namespace

std::string describe(const v1::ConntrackEntry& e) {
  auto ip = [](uint32_t a) {
    char b[INET_ADDRSTRLEN] = {};
    in_addr x{};
    x.s_addr = a;
    ::inet_ntop(AF_INET, &x, b, sizeof b);
    return std::string(b);
  };
  std::string proto = e.proto() == IPPROTO_TCP    ? "tcp"
                      : e.proto() == IPPROTO_UDP  ? "udp"
                      : e.proto() == IPPROTO_ICMP ? "icmp"
                                                  : "proto " + std::to_string(e.proto());
  if (e.proto() == IPPROTO_ICMP) return proto + " " + ip(e.orig_src()) + " -> " + ip(e.orig_dst()) + " id " + std::to_string(e.icmp_id());
  return proto + " " + ip(e.orig_src()) + ":" + std::to_string(e.orig_sport()) + " -> " + ip(e.orig_dst()) + ":" +
         std::to_string(e.orig_dport());
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
  LXMIG_ASSIGN_OR_RETURN(auto s, openSocket());
  const uint32_t base = 1;
  auto buildNew = [&](uint16_t flags) {
    return [&, flags](size_t i, char* at, uint32_t seq) {
      nlmsghdr* nlh = putHeader(at, IPCTNL_MSG_CT_NEW, flags, seq);
      Conntrack c(nfct_new());
      toKernel(c.get(), entries[i]);
      nfct_nlmsg_build(nlh, c.get());
      return nlh;
    };
  };
  LXMIG_ASSIGN_OR_RETURN(auto errs, sendBatched(s.get(), entries.size(), base,
                                                buildNew(NLM_F_CREATE | NLM_F_EXCL)));
  // Entries that exist already (a flow that reached this node first) are
  // updated in place: timeout, mark, TCP state.
  std::vector<size_t> exist;
  Status first;
  for (const auto& e : errs) {
    size_t i = e.seq - base;
    if (i >= entries.size()) continue;
    if (e.err == EEXIST) exist.push_back(i);
    else if (first.ok())
      first = Status(Code::kInternal, "create conntrack entry " + describe(entries[i]) + ": " + std::strerror(e.err));
  }
  if (!first.ok()) return first;
  stats.created = entries.size() - exist.size();
  if (!exist.empty()) {
    ConntrackEntries again;
    for (size_t i : exist) again.push_back(entries[i]);
    auto upd = [&](size_t i, char* at, uint32_t seq) {
      nlmsghdr* nlh = putHeader(at, IPCTNL_MSG_CT_NEW, 0, seq);
      Conntrack one(nfct_new());
      setTuple(one.get(), again[i]);
      nfct_set_attr_u32(one.get(), ATTR_TIMEOUT, std::max<uint32_t>(again[i].timeout(), 1));
      if (again[i].mark() != 0) nfct_set_attr_u32(one.get(), ATTR_MARK, again[i].mark());
      nfct_nlmsg_build(nlh, one.get());
      return nlh;
    };
    LXMIG_ASSIGN_OR_RETURN(auto errs2, sendBatched(s.get(), again.size(), base, upd));
    for (const auto& e : errs2) {
      size_t i = e.seq - base;
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
