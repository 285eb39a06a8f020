#include "sock_diag.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "lxmig/base/process.h"

namespace lxmig::grouping::internal {

Result<UniqueFd> openDiagIn(const std::string& nsPath) {
  UniqueFd fd;
  LXMIG_RETURN_IF_ERROR(inNamespace(nsPath, CLONE_NEWNET, [&]() -> Status {
    fd.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    return fd ? okStatus() : Status::fromErrno("open sock_diag in", nsPath);
  }));
  return fd;
}

Result<std::vector<UnixSock>> dumpUnixSockets(int diagFd) {
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0u;
  msg.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::sendto(diagFd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return Status::fromErrno("send", "unix sock_diag request");

  std::vector<UnixSock> out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::recv(diagFd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("recv", "unix sock_diag dump");
    }
    if (n == 0) return out;
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return Status::fromErrno("unix sock_diag", "dump", -e->error);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
      UnixSock s;
      s.inode = m->udiag_ino;
      s.type = m->udiag_type;
      s.state = m->udiag_state;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        auto* data = static_cast<const char*>(RTA_DATA(a));
        size_t size = RTA_PAYLOAD(a);
        switch (a->rta_type) {
          case UNIX_DIAG_NAME:
            if (size > 0 && data[0] == '\0') s.name = "@" + std::string(data + 1, size - 1);
            else s.name = std::string(data, ::strnlen(data, size));
            break;
          case UNIX_DIAG_PEER:
            if (size >= 4) {
              uint32_t p;
              std::memcpy(&p, data, 4);
              s.peer = p;
            }
            break;
          case UNIX_DIAG_ICONS:
            for (size_t i = 0; i + 4 <= size; i += 4) {
              uint32_t p;
              std::memcpy(&p, data + i, 4);
              if (p) s.pending.push_back(p);
            }
            break;
        }
      }
      out.push_back(std::move(s));
    }
  }
}

}  // namespace lxmig::grouping::internal
