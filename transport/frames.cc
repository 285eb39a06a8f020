#include "frames.h"

#include <openssl/err.h>

#include <cerrno>

namespace lxmig::transport::frames {

// OpenSSL's error queue on one line, emptied.
std::string sslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char b[256];
    ERR_error_string_n(e, b, sizeof b);
    if (!out.empty()) out += "; ";
    out += b;
  }
  return out.empty() ? "unknown TLS error" : out;
}

Status socketError(int err, const std::string& what) {
  if (err == 0 || err == EPIPE || err == ECONNRESET) return unavailable(what + ": connection closed by the peer");
  if (err == EAGAIN || err == EWOULDBLOCK) return unavailable(what + ": timed out");
  return Status(Code::kUnavailable, what + ": " + std::strerror(err), err);
}

// Moves the pieces past `done` bytes.
void consume(iovec*& iov, int& n, size_t done) {
  while (n > 0 && done >= iov->iov_len) {
    done -= iov->iov_len;
    ++iov;
    --n;
  }
  if (n > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + done;
    iov->iov_len -= done;
  }
}

// Writes every byte of the pieces (one syscall for a whole frame mostly).
Status sendAll(int fd, iovec* iov, int n, const std::string& what) {
  while (n > 0) {
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return socketError(errno, what);
    }
    consume(iov, n, static_cast<size_t>(w));
  }
  return okStatus();
}

// Fills the pieces (one syscall for a whole frame mostly).
Status recvAll(int fd, iovec* iov, int n, const std::string& what) {
  while (n > 0) {
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = static_cast<size_t>(n);
    ssize_t r = ::recvmsg(fd, &mh, MSG_WAITALL);
    if (r == 0) return unavailable(what + ": connection closed by the peer");
    if (r < 0) {
      if (errno == EINTR) continue;
      return socketError(errno, what);
    }
    consume(iov, n, static_cast<size_t>(r));
  }
  return okStatus();
}

Status recvAll(int fd, char* p, size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, MSG_WAITALL);
    if (r == 0) return unavailable(what + ": connection closed by the peer");
    if (r < 0) {
      if (errno == EINTR) continue;
      return socketError(errno, what);
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return okStatus();
}

}  // namespace lxmig::transport::frames
