// The data link's receiving end on bytes from the wire (transport/frames.h).
// Byte 0 chooses the AEAD (bit 0) and the path (bit 1):
//  - raw: the rest goes to the socket as it is. Whatever it holds, the
//    receiver returns nothing but an error: without the keys no frame opens.
//  - sealed: the rest describes frames (kind, header and data lengths, the
//    bytes) that a sending channel with the matching keys seals and sends,
//    and byte 1 names one byte of the stream to flip (0: none). The
//    receiver must return exactly the frames sent, in order, until the
//    flipped one, which must fail; a frame over the size limits must fail.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "frames.h"
#include "fuzz_check.h"

namespace frames = lxmig::transport::frames;

namespace {

struct Sent {
  uint32_t kind;
  std::string header, data;
};

constexpr frames::Kind kKinds[] = {frames::kReady, frames::kChunk, frames::kEnd, frames::kVerdict};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  if (size < 2) return 0;
  const auto aead = (in[0] & 1) ? frames::Aead::kOcb : frames::Aead::kGcm;
  const bool sealed = in[0] & 2;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  lxmig::UniqueFd writeEnd(sv[0]);
  unsigned char k1[16], k2[16];
  for (int i = 0; i < 16; ++i) k1[i] = static_cast<unsigned char>(i), k2[i] = static_cast<unsigned char>(0x80 + i);
  frames::Channel receiver(lxmig::UniqueFd(sv[1]), "fuzz");
  LXMIG_FUZZ_CHECK(receiver.setKeys(k2, k1, aead).ok());

  std::vector<Sent> sent;
  std::string stream;
  if (!sealed) {
    stream.assign(reinterpret_cast<const char*>(in + 2), size - 2);
  } else {
    // Seal the described frames into `stream` through a second channel.
    int pv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pv) != 0) return 0;
    frames::Channel sender(lxmig::UniqueFd(pv[0]), "fuzz-sender");
    lxmig::UniqueFd sink(pv[1]);
    LXMIG_FUZZ_CHECK(sender.setKeys(k1, k2, aead).ok());
    size_t at = 2;
    while (at + 5 <= size && sent.size() < 16) {
      Sent f;
      f.kind = kKinds[in[at] % 4];
      size_t hlen = in[at + 1] | (in[at + 2] << 8), dlen = in[at + 3] | (in[at + 4] << 8);
      at += 5;
      hlen = std::min(hlen, size - at);
      f.header.assign(reinterpret_cast<const char*>(in + at), hlen);
      at += hlen;
      dlen = std::min(dlen, size - at);
      f.data.assign(reinterpret_cast<const char*>(in + at), dlen);
      at += dlen;
      std::string h = f.header, d = f.data;
      // One frame (at most ~128 KiB) fits an empty socket buffer: drained
      // after each send, the sender never blocks.
      LXMIG_FUZZ_CHECK(sender.send(static_cast<frames::Kind>(f.kind), h, d).ok());
      char buf[65536];
      ssize_t n;
      while ((n = ::recv(sink.get(), buf, sizeof buf, MSG_DONTWAIT)) > 0) stream.append(buf, size_t(n));
      sent.push_back(std::move(f));
    }
    if (in[1] != 0 && !stream.empty()) stream[(in[1] * 131u) % stream.size()] ^= 0x5a;
  }
  // The wire: written from a thread (it may hold more than a socket buffer).
  std::thread writer([&] {
    size_t off = 0;
    while (off < stream.size()) {
      ssize_t w = ::send(writeEnd.get(), stream.data() + off, stream.size() - off, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += size_t(w);
    }
    ::shutdown(writeEnd.get(), SHUT_WR);
  });
  size_t got = 0;
  bool failed = false;
  for (;;) {
    std::string header, data;
    auto h = receiver.receive(header, data);
    if (!h.ok()) {
      failed = true;
      break;
    }
    LXMIG_FUZZ_CHECK(header.size() <= frames::kMaxHeader && data.size() <= frames::kMaxData);
    LXMIG_FUZZ_CHECK(sealed && got < sent.size());  // raw bytes never open
    LXMIG_FUZZ_CHECK(h->kind == sent[got].kind && header == sent[got].header && data == sent[got].data);
    ++got;
  }
  ::shutdown(receiver.fd(), SHUT_RDWR);
  writer.join();
  LXMIG_FUZZ_CHECK(failed);
  if (sealed && in[1] == 0) LXMIG_FUZZ_CHECK(got == sent.size());  // untouched: every frame arrives
  return 0;
}
