#include "lxmig/net/hold.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"

namespace lxmig::net {
namespace {

constexpr const char* kLog = "hold";
using Socket = UniqueHandle<mnl_socket, mnl_socket_close>;

// Bytes of each packet copied to us: its IPv4 header, for the destination.
constexpr uint32_t kCopyBytes = 20;
constexpr size_t kVerdictBatchBytes = 32 * 1024;

nlmsghdr* putQueueHeader(char* buf, uint16_t type, uint16_t queue) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(queue);
  return nlh;
}

// Sends one config message and waits for the kernel's answer (an ack or an
// error), so that a queue held by another program is a clear error.
Status configure(mnl_socket* s, uint16_t queue, const std::function<void(nlmsghdr*)>& fill, const char* what) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = putQueueHeader(buf.data(), NFQNL_MSG_CONFIG, queue);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = static_cast<uint32_t>(monotonicNs());
  fill(nlh);
  if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) return Status::fromErrno(what, "NFQUEUE " + std::to_string(queue));
  const int fd = mnl_socket_get_fd(s);
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 2000) <= 0) return deadlineExceeded(std::string(what) + ": no answer from the kernel");
  const ssize_t n = mnl_socket_recvfrom(s, buf.data(), buf.size());
  if (n < 0) return Status::fromErrno(what, "NFQUEUE " + std::to_string(queue));
  if (mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, mnl_socket_get_portid(s), nullptr, nullptr) < 0) {
    if (errno == EBUSY)
      return failedPrecondition("NFQUEUE " + std::to_string(queue) +
                                " is taken by another program on this node (agent config hold_queue)");
    return Status::fromErrno(what, "NFQUEUE " + std::to_string(queue));
  }
  return okStatus();
}

int attrOf(const nlattr* a, void* data) {
  const nlattr** tb = static_cast<const nlattr**>(data);
  const int type = mnl_attr_get_type(a);
  if (mnl_attr_type_valid(a, NFQA_MAX) < 0) return MNL_CB_OK;
  tb[type] = a;
  return MNL_CB_OK;
}

}  // namespace

std::vector<QueuedPacket> parseQueuedPackets(const void* buf, size_t len) {
  std::vector<QueuedPacket> out;
  // Walked by hand: libmnl's mnl_nlmsg_ok takes a length above INT_MAX for
  // a negative one, and lets it pass (found by the fuzzer).
  const auto* base = static_cast<const char*>(buf);
  size_t at = 0;
  while (len - at >= sizeof(nlmsghdr)) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(base + at);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > len - at) break;
    at += std::min<size_t>(NLMSG_ALIGN(nlh->nlmsg_len), len - at);
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) continue;
    const nlattr* tb[NFQA_MAX + 1] = {};
    if (mnl_attr_parse(nlh, sizeof(nfgenmsg), attrOf, tb) < 0) continue;
    const nlattr* hdr = tb[NFQA_PACKET_HDR];
    if (!hdr || mnl_attr_get_payload_len(hdr) < sizeof(nfqnl_msg_packet_hdr)) continue;
    nfqnl_msg_packet_hdr ph{};
    std::memcpy(&ph, mnl_attr_get_payload(hdr), sizeof ph);
    QueuedPacket p;
    p.id = ntohl(ph.packet_id);
    const nlattr* payload = tb[NFQA_PAYLOAD];
    if (ntohs(ph.hw_protocol) == 0x0800 && payload && mnl_attr_get_payload_len(payload) >= kCopyBytes) {
      const auto* ip = static_cast<const uint8_t*>(mnl_attr_get_payload(payload));
      if ((ip[0] >> 4) == 4) std::memcpy(&p.daddr, ip + 16, 4);
    }
    out.push_back(p);
  }
  return out;
}

struct PacketHold::State {
  Socket sock;
  uint16_t queue = 0;
  std::thread reader;
  std::atomic<bool> stop{false};

  mutable std::mutex mu;
  struct Waiting {
    uint32_t id;
    int64_t sinceNs;
  };
  std::map<uint32_t, std::deque<Waiting>> held;  // by destination (network order)
  std::set<uint32_t> passing;                    // addresses whose packets pass at once
  uint64_t released = 0, expired = 0;

  // Sends verdicts in as few datagrams as fit; a failed send is logged
  // (the packets then wait in the kernel until the agent's socket closes).
  void verdicts(const std::vector<uint32_t>& ids, uint32_t verdict) {
    std::vector<char> buf(kVerdictBatchBytes);
    size_t used = 0;
    auto flush = [&] {
      if (used && mnl_socket_sendto(sock.get(), buf.data(), used) < 0)
        LXMIG_LOG(kWarn, kLog) << Status::fromErrno("send verdicts", "NFQUEUE " + std::to_string(queue)).toString();
      used = 0;
    };
    for (uint32_t id : ids) {
      if (used + 64 > buf.size()) flush();
      nlmsghdr* nlh = putQueueHeader(buf.data() + used, NFQNL_MSG_VERDICT, queue);
      nfqnl_msg_verdict_hdr vh{htonl(verdict), htonl(id)};
      mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
      used += NLMSG_ALIGN(nlh->nlmsg_len);
    }
    flush();
  }

  void take(const std::vector<QueuedPacket>& packets) {
    std::vector<uint32_t> pass;
    {
      std::lock_guard lk(mu);
      const int64_t now = monotonicNs();
      for (const auto& p : packets) {
        if (p.daddr == 0 || passing.count(p.daddr)) {
          pass.push_back(p.id);  // not ours to keep (not IPv4), or already on its way
          continue;
        }
        held[p.daddr].push_back({p.id, now});
      }
    }
    verdicts(pass, NF_ACCEPT);
  }

  void expire() {
    std::vector<uint32_t> drop;
    {
      std::lock_guard lk(mu);
      const int64_t limit = monotonicNs() - kMaxHoldMs * 1'000'000;
      for (auto it = held.begin(); it != held.end();) {
        auto& q = it->second;
        while (!q.empty() && q.front().sinceNs < limit) {
          drop.push_back(q.front().id);
          q.pop_front();
        }
        it = q.empty() ? held.erase(it) : std::next(it);
      }
      expired += drop.size();
    }
    if (!drop.empty()) {
      LXMIG_LOG(kWarn, kLog) << drop.size() << " packet(s) held longer than " << kMaxHoldMs << " ms dropped";
      verdicts(drop, NF_DROP);
    }
  }

  void run() {
    std::vector<char> buf(256 * 1024);
    const int fd = mnl_socket_get_fd(sock.get());
    while (!stop.load()) {
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, 200);
      if (r > 0) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0) take(parseQueuedPackets(buf.data(), static_cast<size_t>(n)));
        else if (n < 0 && errno == ENOBUFS)
          LXMIG_LOG(kWarn, kLog) << "NFQUEUE " << queue << ": messages lost (the kernel dropped those packets)";
      }
      expire();
    }
  }
};

Result<std::unique_ptr<PacketHold>> PacketHold::open(uint16_t queue) {
  auto st = std::make_unique<State>();
  st->queue = queue;
  st->sock = Socket(mnl_socket_open(NETLINK_NETFILTER));
  if (!st->sock) return Status::fromErrno("open netlink socket", "NFQUEUE");
  if (mnl_socket_bind(st->sock.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Status::fromErrno("bind netlink socket", "NFQUEUE " + std::to_string(queue));
  int big = 4 << 20;
  (void)::setsockopt(mnl_socket_get_fd(st->sock.get()), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  LXMIG_RETURN_IF_ERROR(configure(
      st->sock.get(), queue,
      [](nlmsghdr* nlh) {
        nfqnl_msg_config_cmd cmd{};
        cmd.command = NFQNL_CFG_CMD_BIND;
        mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof cmd, &cmd);
      },
      "bind"));
  LXMIG_RETURN_IF_ERROR(configure(
      st->sock.get(), queue,
      [](nlmsghdr* nlh) {
        nfqnl_msg_config_params params{htonl(kCopyBytes), NFQNL_COPY_PACKET};
        mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof params, &params);
        mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(kQueueLength));
      },
      "configure"));
  State* raw = st.get();
  st->reader = std::thread([raw] { raw->run(); });
  return std::unique_ptr<PacketHold>(new PacketHold(std::move(st)));
}

PacketHold::PacketHold(std::unique_ptr<State> s) : s_(std::move(s)) {}

PacketHold::~PacketHold() {
  s_->stop = true;
  if (s_->reader.joinable()) s_->reader.join();
}

size_t PacketHold::release(const std::string& ip, Verdict v, bool passFromNow) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return 0;
  std::vector<uint32_t> ids;
  {
    std::lock_guard lk(s_->mu);
    if (passFromNow) s_->passing.insert(a.s_addr);
    auto it = s_->held.find(a.s_addr);
    if (it != s_->held.end()) {
      for (const auto& w : it->second) ids.push_back(w.id);
      s_->held.erase(it);
    }
    s_->released += ids.size();
  }
  s_->verdicts(ids, v == Verdict::kAccept ? NF_ACCEPT : NF_DROP);
  return ids.size();
}

void PacketHold::holdAgain(const std::string& ip) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return;
  std::lock_guard lk(s_->mu);
  s_->passing.erase(a.s_addr);
}

PacketHold::Stats PacketHold::stats() const {
  std::lock_guard lk(s_->mu);
  Stats st;
  for (const auto& [ip, q] : s_->held) st.held += q.size();
  st.released = s_->released;
  st.expired = s_->expired;
  return st;
}

uint16_t PacketHold::queue() const { return s_->queue; }

}  // namespace lxmig::net
