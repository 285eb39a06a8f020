// The migration's bulk path between two agents. Each stream (the writable
// area, one pre-copy round, the images after the dump) is one TCP connection
// under the same mutual-TLS identity as the gRPC peers (cluster CA, node
// certificate and key; TLS 1.3 only), carrying TransferChunk frames with the
// payload outside the protobuf. Measured on the test bed, the Transfer RPC
// (HTTP/2 framing, payload copies into messages, completion-queue thread
// hops) reached 0.36-0.63x of a plain TCP stream; DESIGN.md allows this link
// once measured. The Transfer RPC stays as the fallback (`grpcChunkWriter`)
// for a target that offers no data port or cannot be reached on it.
//
//   auto srv = DataServer::start(tls, "10.99.0.12:7401", [&](const ChunkSource& next) {
//     return incoming.receive(next);
//   });
//   auto w = connectDataLink(tls, "10.99.0.12", srv->port(), 5000);
//   (*w)->write(chunk);            // queued; a sender thread encrypts and sends
//   auto reply = (*w)->finish();   // the receiver's verdict
//
// On the wire (integers little endian): frames of u32 kind, u32 header
// length, u32 data length, the header (a TransferChunk without `data`; under
// AES-128-OCB padded with zeros to whole 16-byte blocks), the data, the
// AEAD tag; the 12-byte head is the AEAD's associated data. The source sends chunk frames and one end frame; the
// receiver answers with one verdict frame (a DataLinkVerdict), early when it stops on an error. The source looks for an
// early verdict between its frames, so a receiver's error stops the sender at once and is the error reported.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::transport {

struct TlsIdentity {
  std::string caPem, certPem, keyPem;
  // The data link's frames use AES-128-GCM only (never AES-128-OCB, which
  // both ends otherwise agree on when they can): config `data_link_cipher`.
  bool gcmOnly = false;
};

// One bulk stream, source side. write() and finish() are called from one
// thread; cancel() from any. Integrity per chunk is the transport's: the
// Transfer RPC adds an XXH3 of the data (checked by the receiver), the data
// link seals every frame (AEAD tag); producers set no checksum.
class ChunkWriter {
 public:
  virtual ~ChunkWriter() = default;
  // Sends one chunk (its data may be moved out). False once the stream is
  // broken or cancelled; finish() then tells why.
  virtual bool write(v1::TransferChunk& c) = 0;
  // Ends the stream and waits for the receiver's verdict: its reply, or the
  // receiver's error (which beats "stream broke"), or why the link failed.
  virtual Result<v1::TransferReply> finish() = 0;
  // Breaks the stream at once; idempotent.
  virtual void cancel() = 0;
  // "data link (AES-128-OCB)", "data link (AES-128-GCM)" or "gRPC", for
  // logs and the audit.
  virtual const char* kind() const = 0;
};

// The Transfer RPC as a ChunkWriter (the stub must outlive it). `peer`
// names the target in errors.
std::unique_ptr<ChunkWriter> grpcChunkWriter(v1::Peer::Stub& stub, const std::string& peer);

// Opens a data link to host:port: TCP connect and TLS handshake within
// timeoutMs, the server's certificate checked against the CA and `host`
// (a name or an address its certificate must carry). Unavailable when the
// port does not answer, PermissionDenied when the TLS handshake fails.
Result<std::unique_ptr<ChunkWriter>> connectDataLink(const TlsIdentity& tls, const std::string& host, uint16_t port,
                                                     int timeoutMs);

// Receiver side: fills the next chunk and returns true, returns false at the
// clean end of the stream, or an error when the link broke before it. Chunks
// from a data link carry no XXH3 (their frame was authenticated).
using ChunkSource = std::function<Result<bool>(v1::TransferChunk&)>;
// Consumes one stream from the node `peer`; its result is the verdict sent
// back to the source.
using ChunkHandler = std::function<Result<v1::TransferReply>(const std::string& peer, const ChunkSource&)>;
// Who a client is, from the names its certificate carries (DNS
// subjectAltNames, then the subject's CN): the node's name, or why the
// client is refused (its connection is then closed before any frame).
using PeerAuthorizer = std::function<Result<std::string>(const std::vector<std::string>& certificateNames)>;

// Accepts data links on one address; each connection runs the handler on
// its own thread. Clients must present a certificate of the cluster CA that
// `authorize` accepts, and finish their TLS handshake within 10 s; at most
// 16 connections may be in their handshake at once, 64 open in all.
class DataServer {
 public:
  // `listen` is host:port (port 0: any free port, see port()).
  static Result<std::unique_ptr<DataServer>> start(const TlsIdentity& tls, const std::string& listen,
                                                   PeerAuthorizer authorize, ChunkHandler handler);
  // Stops accepting, breaks open connections and waits for their threads.
  ~DataServer();
  uint16_t port() const;

  struct Impl;

 private:
  explicit DataServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Chunk buffers, recycled: a 1 MiB buffer allocated per chunk is fresh
// memory every time (malloc returns it to the kernel, which may hand it to
// the hypervisor), and touching fresh memory costs more than sending it.
// takeBuffer() returns a buffer of `bytes` (contents unspecified), reusing
// one that a sent chunk gave back when there is one; the data link gives
// every sent chunk's buffer back. A few buffers are kept, the rest freed.
std::string takeBuffer(size_t bytes);
void recycleBuffer(std::string&& buffer);

}  // namespace lxmig::transport
