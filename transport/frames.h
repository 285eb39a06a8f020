// The data link's frames (data_link.h draws them on the wire): their heads,
// the AEAD that seals each frame under keys exported from the TLS session,
// and the channel that sends and receives them on a connected socket.
// Private to transport/; the fuzz target of the frame parser uses it.
#pragma once

#include <endian.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <string>

#include <google/protobuf/message_lite.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"
#include "lxmig/transport/data_link.h"

namespace lxmig::transport::frames {

using CipherCtx = UniqueHandle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// Frame kinds; odd values so that a stray client (or an HTTP/2 preface)
// fails on its first frame.
enum Kind : uint32_t { kReady = 0x4c58d001, kChunk = 0x4c58d003, kEnd = 0x4c58d005, kVerdict = 0x4c58d007 };
constexpr size_t kHeadBytes = 12;
constexpr uint32_t kMaxHeader = 64 << 10;
// Chunks carry 1 MiB of data; a frame announces its size before it can be
// authenticated, so the receiver reserves at most this per frame.
constexpr uint32_t kMaxData = 4 << 20;

// OpenSSL's error queue on one line, emptied.
std::string sslErrors();
Status socketError(int err, const std::string& what);
// Moves the pieces past `done` bytes.
void consume(iovec*& iov, int& n, size_t done);
// Writes every byte of the pieces (one syscall for a whole frame mostly).
Status sendAll(int fd, iovec* iov, int n, const std::string& what);
// Fills the pieces (one syscall for a whole frame mostly).
Status recvAll(int fd, iovec* iov, int n, const std::string& what);
Status recvAll(int fd, char* p, size_t n, const std::string& what);

struct Head {
  uint32_t kind = 0, headerLen = 0, dataLen = 0;
};

inline void putHead(char* b, const Head& h) {
  const uint32_t v[3] = {htole32(h.kind), htole32(h.headerLen), htole32(h.dataLen)};
  std::memcpy(b, v, kHeadBytes);
}

inline Head getHead(const char* b) {
  uint32_t v[3];
  std::memcpy(v, b, sizeof v);
  return {le32toh(v[0]), le32toh(v[1]), le32toh(v[2])};
}

// The frames' AEAD, chosen in the TLS handshake by ALPN: AES-128-OCB
// (RFC 7253) when both ends offer it, twice as fast as GCM with OpenSSL 3.0
// here (10.5 vs 5.0 GB/s; the page stream is CPU-bound); AES-128-GCM with
// an agent that offers no ALPN (older lxmigd) or is configured for GCM only
// (`data_link_cipher`, e.g. where only FIPS-approved modes may be used).
enum class Aead { kGcm, kOcb };
constexpr unsigned char kAlpnOcb[] = "\x0clxmig-data/2";
constexpr unsigned char kAlpnGcm[] = "\x0clxmig-data/1";
constexpr unsigned char kAlpnBoth[] = "\x0clxmig-data/2\x0clxmig-data/1";

inline const char* aeadName(Aead a) { return a == Aead::kOcb ? "AES-128-OCB" : "AES-128-GCM"; }

// OCB emits whole 16-byte blocks as it goes and the rest at the end, so a
// frame's header, encrypted in place ahead of its data, is padded to whole
// blocks; the frame head keeps its real length.
inline size_t sealedHeaderBytes(Aead a, size_t headerLen) {
  return a == Aead::kOcb ? (headerLen + 15) / 16 * 16 : headerLen;
}

// One direction of a link after the handshake: the AEAD under a key
// exported from the TLS 1.3 session (RFC 8446 7.5), the nonce a frame
// counter, so frames are accepted only in order and only once. A frame is
// sealed as one AEAD message of up to 64 MiB, where TLS would cut 16 KiB
// records, copy each through its buffers and pay a syscall per record; the
// frame head travels in clear as associated data.
class FrameCipher {
 public:
  static constexpr size_t kKeyBytes = 16;
  static constexpr size_t kTagBytes = 16;

  Status init(const unsigned char* key, bool sealing, Aead aead) {
    sealing_ = sealing;
    ctx_.reset(EVP_CIPHER_CTX_new());
    if (!ctx_) return internalError("cipher context: " + sslErrors());
    const EVP_CIPHER* cipher = aead == Aead::kOcb ? EVP_aes_128_ocb() : EVP_aes_128_gcm();
    int ok = sealing ? EVP_EncryptInit_ex(ctx_.get(), cipher, nullptr, key, nullptr)
                     : EVP_DecryptInit_ex(ctx_.get(), cipher, nullptr, key, nullptr);
    if (ok != 1) return internalError(std::string(aeadName(aead)) + " init: " + sslErrors());
    return okStatus();
  }

  // One frame: begin() with the associated data, update() over its bytes
  // in order (in place; `done` says how many came out, OCB holds back a
  // partial block), then seal() or open() puts what was held back at `tail`
  // (right after the last update's output) and writes or checks the tag.
  Status begin(const char* aad, size_t aadLen) {
    unsigned char iv[12] = {};
    uint64_t n = htole64(counter_++);
    std::memcpy(iv + 4, &n, sizeof n);
    EVP_CIPHER_CTX* c = ctx_.get();
    if ((sealing_ ? EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, iv)
                  : EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, iv)) != 1)
      return internalError("cipher: " + sslErrors());
    return update(nullptr, aad, aadLen);
  }
  Status update(char* p, const char* in, size_t bytes, size_t* done = nullptr) {
    if (done) *done = 0;
    if (bytes == 0) return okStatus();
    int len = 0;
    auto* out = reinterpret_cast<unsigned char*>(p);
    auto* src = reinterpret_cast<const unsigned char*>(in);
    int ok = sealing_ ? EVP_EncryptUpdate(ctx_.get(), out, &len, src, static_cast<int>(bytes))
                      : EVP_DecryptUpdate(ctx_.get(), out, &len, src, static_cast<int>(bytes));
    if (ok != 1) return internalError("cipher: " + sslErrors());
    if (done) *done = static_cast<size_t>(len);
    return okStatus();
  }
  Status update(char* p, size_t bytes, size_t* done = nullptr) { return update(p, p, bytes, done); }
  Status seal(char* tail, unsigned char* tag) {
    int len = 0;
    if (EVP_EncryptFinal_ex(ctx_.get(), reinterpret_cast<unsigned char*>(tail), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes, tag) != 1)
      return internalError("cipher: " + sslErrors());
    return okStatus();
  }
  Status open(char* tail, unsigned char* tag) {
    int len = 0;
    if (EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx_.get(), reinterpret_cast<unsigned char*>(tail), &len) != 1) {
      ERR_clear_error();
      return Status(Code::kPermissionDenied, "frame failed authentication");
    }
    return okStatus();
  }

 private:
  CipherCtx ctx_;
  uint64_t counter_ = 0;
  bool sealing_ = true;
};

// A link after its handshake: the socket and the two directions' ciphers.
class Channel {
 public:
  Channel(UniqueFd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}

  // Derives both directions' keys from the finished TLS session, for the
  // AEAD its ALPN chose (none chosen: GCM, the original link).
  Status keys(SSL* ssl, bool client) {
    const unsigned char* proto = nullptr;
    unsigned protoLen = 0;
    SSL_get0_alpn_selected(ssl, &proto, &protoLen);
    const Aead aead =
        protoLen == kAlpnOcb[0] && std::memcmp(proto, kAlpnOcb + 1, protoLen) == 0 ? Aead::kOcb : Aead::kGcm;
    unsigned char km[2 * FrameCipher::kKeyBytes];
    const std::string label = aead == Aead::kOcb ? "EXPORTER-lxmig-data-link-v2" : "EXPORTER-lxmig-data-link-v1";
    if (SSL_export_keying_material(ssl, km, sizeof km, label.data(), label.size(), nullptr, 0, 0) != 1)
      return internalError("data link " + peer_ + ": key export: " + sslErrors());
    const unsigned char* toServer = km;
    const unsigned char* toClient = km + FrameCipher::kKeyBytes;
    Status st = setKeys(client ? toServer : toClient, client ? toClient : toServer, aead);
    OPENSSL_cleanse(km, sizeof km);
    return st;
  }
  // The two directions' keys as they are (tests and fuzzing; the link
  // itself uses keys()).
  Status setKeys(const unsigned char* sending, const unsigned char* receiving, Aead aead) {
    aead_ = aead;
    LXMIG_RETURN_IF_ERROR(out_.init(sending, true, aead_));
    return in_.init(receiving, false, aead_);
  }

  Aead aead() const { return aead_; }

  int fd() const { return fd_.get(); }
  const std::string& peer() const { return peer_; }

  // Seals header and data in place and sends the frame: one AEAD pass and
  // one sendmsg (measured: 256 KiB pieces, hotter in the cache, were 20%
  // slower here; a syscall costs more than the cache misses it saves).
  Status send(Kind kind, std::string& header, std::string& data) {
    const std::string what = "data link " + peer_;
    char head[kHeadBytes];
    putHead(head, {kind, static_cast<uint32_t>(header.size()), static_cast<uint32_t>(data.size())});
    header.resize(sealedHeaderBytes(aead_, header.size()));
    unsigned char tag[FrameCipher::kTagBytes];
    size_t done = 0;
    LXMIG_RETURN_IF_ERROR(out_.begin(head, sizeof head).withContext(what));
    LXMIG_RETURN_IF_ERROR(out_.update(header.data(), header.size(), &done).withContext(what));
    if (done != header.size()) return internalError(what + ": cipher held back part of a header");
    LXMIG_RETURN_IF_ERROR(out_.update(data.data(), data.size(), &done).withContext(what));
    LXMIG_RETURN_IF_ERROR(out_.seal(data.data() + done, tag).withContext(what));
    iovec iov[4] = {{head, sizeof head}, {header.data(), header.size()}, {data.data(), data.size()}, {tag, sizeof tag}};
    return sendAll(fd_.get(), iov, 4, what);
  }

  Status sendMessage(Kind kind, const google::protobuf::MessageLite& m) {
    std::string header = m.SerializeAsString(), none;
    return send(kind, header, none);
  }

  // Receives one frame, opened in place. `data` is a recycled buffer unless
  // the caller brings one.
  Result<Head> receive(std::string& header, std::string& data) {
    const std::string what = "data link " + peer_;
    char head[kHeadBytes];
    LXMIG_RETURN_IF_ERROR(recvAll(fd_.get(), head, sizeof head, what));
    Head h = getHead(head);
    if (h.headerLen > kMaxHeader || h.dataLen > kMaxData)
      return invalidArgument(what + ": frame of " + std::to_string(h.headerLen) + "+" + std::to_string(h.dataLen) +
                             " bytes exceeds the limits");
    header.resize(sealedHeaderBytes(aead_, h.headerLen));
    if (data.capacity() < h.dataLen) data = takeBuffer(h.dataLen);
    data.resize(h.dataLen);
    unsigned char tag[FrameCipher::kTagBytes];
    // The rest of the frame in one call. (Not with SO_RCVLOWAT to save
    // wake-ups: the tail of a stream's last frame, shorter than the mark,
    // would never wake the reader.)
    iovec iov[3] = {{header.data(), header.size()}, {data.data(), data.size()}, {tag, sizeof tag}};
    LXMIG_RETURN_IF_ERROR(recvAll(fd_.get(), iov, 3, what));
    size_t done = 0;
    LXMIG_RETURN_IF_ERROR(in_.begin(head, sizeof head).withContext(what));
    LXMIG_RETURN_IF_ERROR(in_.update(header.data(), header.size(), &done).withContext(what));
    if (done != header.size()) return internalError(what + ": cipher held back part of a header");
    LXMIG_RETURN_IF_ERROR(in_.update(data.data(), data.size(), &done).withContext(what));
    LXMIG_RETURN_IF_ERROR(in_.open(data.data() + done, tag).withContext(what));
    header.resize(h.headerLen);
    return h;
  }

 private:
  UniqueFd fd_;
  std::string peer_;
  FrameCipher out_, in_;
  Aead aead_ = Aead::kGcm;
};

}  // namespace lxmig::transport::frames
