// The agents' bulk stream alone (issue 4's page-stream goal): one stream of
// 1 MiB chunks (integrity as the agents do it: an AEAD tag per frame on
// the data link, an XXH3 per chunk on gRPC), over the peers' TLS, into a
// prepared (fake) incoming migration on the target, which writes the file
// into its images tmpfs; aborted afterwards. `--link data` uses the agents'
// data link (agent/data_link.h, what migrations use: AES-128-OCB),
// `--link data-gcm` the same link held to AES-128-GCM (data_link_cipher),
// `--link grpc` the Transfer RPC (the fallback). Run by scripts/bench_stream.sh inside node
// n1's network namespace, side by side with iperf3 between the same
// namespaces.
//
// `--span N` makes the stream write its MiB into the first N MiB of the
// file over and over: the target's page cache stays the same N MiB, so the
// run measures the transport and the receiver without first-touch costs of
// fresh memory (on this VM freed memory goes back to the host and costs
// ~2.3 CPU-s per GiB to touch again, see docs/benchmarks.md).
//
//   stream_bench --target 10.99.0.12:7400 --ca CA --cert CERT --key KEY [--link data|data-gcm|grpc] [--mib 1024]
//                [--span MIB] [--runs 3]
// Output: one JSON object per run {"link","mib","ms","mib_per_s"}.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/transport/data_link.h"
#include "lxmig/v1/agent.grpc.pb.h"

using namespace lxmig;

namespace {
void die(const std::string& m) {
  std::fprintf(stderr, "stream_bench: %s\n", m.c_str());
  std::exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  std::string target, ca, cert, key, host = "n2", link = "data";
  int mib = 1024, runs = 3, span = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--target") target = v;
    else if (a == "--ca") ca = v;
    else if (a == "--cert") cert = v;
    else if (a == "--key") key = v;
    else if (a == "--host") host = v;
    else if (a == "--mib") mib = std::atoi(v.c_str());
    else if (a == "--runs") runs = std::atoi(v.c_str());
    else if (a == "--link") link = v;
    else if (a == "--span") span = std::atoi(v.c_str());
    else die("unknown option " + a);
  }
  if (target.empty() || ca.empty() || cert.empty() || key.empty() ||
      (link != "data" && link != "data-gcm" && link != "grpc"))
    die("usage: stream_bench --target HOST:PORT --ca CA --cert CERT --key KEY [--link data|data-gcm|grpc] [--host "
        "NAME] [--mib N] [--runs N]");
  auto caPem = readFile(ca), certPem = readFile(cert), keyPem = readFile(key);
  if (!caPem.ok() || !certPem.ok() || !keyPem.ok()) die("cannot read the TLS files");
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = *caPem;
  o.pem_cert_chain = *certPem;
  o.pem_private_key = *keyPem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(host);
  args.SetMaxSendMessageSize(64 << 20);
  // Experiments: STREAM_BENCH_ARGS="grpc.http2.write_buffer_size=8388608,..."
  if (const char* extra = std::getenv("STREAM_BENCH_ARGS"))
    for (const auto& kv : split(extra, ',')) {
      auto eq = kv.find('=');
      if (eq != std::string::npos) args.SetInt(kv.substr(0, eq), std::atoi(kv.c_str() + eq + 1));
    }
  auto ch = grpc::CreateCustomChannel(target, grpc::SslCredentials(o), args);
  auto stub = v1::Peer::NewStub(ch);

  // Incompressible data, generated once (the source reads pages; here the
  // cost of producing them is kept out).
  std::string chunk(1 << 20, '\0');
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= chunk.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(chunk.data() + i, &v, 8);
  }
  for (int run = 0; run < runs; ++run) {
    // A migration id (16 hex digits) of its own per run and per process:
    // the target refuses an id its audit has seen. It names the source from
    // our certificate.
    char id[20];
    std::random_device entropy;
    std::snprintf(id, sizeof id, "%08x%08x", entropy(), entropy());
    v1::PrepareRequest pr;
    pr.set_migration_id(id);
    pr.mutable_spec()->set_name("lxstreambench");
    pr.mutable_spec()->set_ip("10.200.250.250");
    pr.set_memory_bytes(uint64_t(mib) << 20);
    uint16_t dataPort = 0;
    {
      grpc::ClientContext ctx;
      v1::PrepareReply rep;
      auto st = stub->Prepare(&ctx, pr, &rep);
      if (!st.ok()) die("prepare: " + st.error_message());
      dataPort = static_cast<uint16_t>(rep.data_port());
    }
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<transport::ChunkWriter> w;
    if (link == "grpc") {
      w = transport::grpcChunkWriter(*stub, host);
    } else {
      if (dataPort == 0) die("the target offers no data link");
      auto hp = splitHostPort(target);
      if (!hp.ok()) die(hp.status().message());
      auto dl = transport::connectDataLink({*caPem, *certPem, *keyPem, link == "data-gcm"}, hp->first, dataPort, 5000);
      if (!dl.ok()) die("data link: " + dl.status().message());
      w = std::move(*dl);
    }
    v1::TransferChunk c;
    c.set_migration_id(id);
    c.set_area(v1::TransferChunk::IMAGES);
    c.set_path("bench.img");
    c.mutable_meta()->set_type(v1::FileMeta::REGULAR);
    c.mutable_meta()->set_mode(0600);
    if (span <= 0 || span > mib) span = mib;
    c.mutable_meta()->set_size(uint64_t(span) << 20);
    bool ok = w->write(c);
    for (int i = 0; ok && i < mib; ++i) {
      v1::TransferChunk d;
      d.set_migration_id(id);  // every chunk names its migration, as the agent's do
      d.set_area(v1::TransferChunk::IMAGES);
      d.set_path("bench.img");
      d.set_offset(uint64_t(i % span) << 20);
      std::string buf = transport::takeBuffer(chunk.size());  // as the agent's senders do
      std::memcpy(buf.data(), chunk.data(), chunk.size());
      d.set_data(std::move(buf));
      ok = w->write(d);
    }
    auto st = w->finish();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    {
      grpc::ClientContext actx;
      v1::AbortRequest ar;
      ar.set_migration_id(id);
      ar.set_reason("stream benchmark done");
      v1::Ack ack;
      (void)stub->Abort(&actx, ar, &ack);
    }
    if (!st.ok()) die("transfer: " + st.status().message());
    std::printf(
        "{\"link\":\"%s\",\"mib\":%d,\"span_mib\":%d,\"run\":%d,\"ms\":%.1f,\"mib_per_s\":%.1f,\"bytes_acked\":%llu}\n",
        link.c_str(), mib, span, run, ms, mib / (ms / 1000.0), static_cast<unsigned long long>(st->bytes()));
    std::fflush(stdout);
  }
  return 0;
}
