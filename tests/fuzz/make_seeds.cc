// Writes the binary seed inputs of the fuzz targets with lxmig's own
// serializers, so that the seeds are what the agents really exchange:
//   fuzz_make_seeds tests/fuzz/corpus
// fills corpus/pagemap/ (CRIU pagemap images), corpus/conntrack/ (the
// conntrack records of NetState), corpus/criu_fifo/ (CRIU's FIFO
// images) and corpus/checkpoint_file/ (a checkpoint file). Text seeds are written by hand.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "checkpoint_file.h"
#include "lxmig/base/files.h"
#include "lxmig/criu/files.pb.h"
#include "lxmig/criu/image.h"
#include "lxmig/net/conntrack.h"

namespace {

using namespace lxmig;
using tracking::kPageSize;

uint32_t addr(const char* dotted) {
  in_addr a{};
  ::inet_pton(AF_INET, dotted, &a);
  return a.s_addr;
}

bool put(const std::string& dir, const std::string& name, const std::string& bytes) {
  if (auto st = makeDirs(dir, 0755); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.toString().c_str());
    return false;
  }
  if (auto st = writeFileAtomic(dir + "/" + name, bytes); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.toString().c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string root = std::filesystem::absolute(argv[1]).string();  // makeDirs wants absolute paths
  bool ok = true;

  // Pagemaps: CRIU's own shape (a lazy heap, text in the parent, a stack),
  // a pre-copy round's, and an empty one.
  const std::string pm = root + "/pagemap";
  criu::Pagemap dump;
  dump.pagesId = 1;
  dump.entries = {{0x55d1c0a00000, 33, criu::kPePresent | criu::kPeLazy},
                  {0x7f3a2c000000, 132, criu::kPeParent},
                  {0x7f3a2c200000, 1, criu::kPePresent},
                  {0x7ffd5c3e0000, 33, criu::kPePresent}};
  ok &= put(pm, "final-dump.img", criu::serializePagemap(dump));
  tracking::PageSet valid, sent;
  valid.add(0x400000, 0x400000 + 64 * kPageSize);
  valid.add(0x7f0000000000, 0x7f0000000000 + 8 * kPageSize);
  sent.add(0x400000 + 8 * kPageSize, 0x400000 + 12 * kPageSize);
  sent.add(0x7f0000000000, 0x7f0000000000 + 8 * kPageSize);
  ok &= put(pm, "round.img", criu::serializePagemap(criu::roundPagemap(3, valid, sent)));
  ok &= put(pm, "empty.img", criu::serializePagemap(criu::Pagemap{7, {}}));
  criu::Pagemap shm = criu::roundPagemap(2147483648u, valid, sent);
  shm.memfdName = "/dev/zero";
  ok &= put(pm, "round-shmem.img", criu::serializePagemap(shm));
  // The target's assembled images, entries naming their offsets.
  criu::Pagemap assembled;
  assembled.pagesId = 1;
  assembled.entries = {{0x55d1c0a00000, 33, criu::kPePresent | criu::kPeLazy, 132 * kPageSize},
                       {0x7f3a2c000000, 132, criu::kPePresent, 0},
                       {0x7f3a2c200000, 1, criu::kPePresent, 165 * kPageSize}};
  ok &= put(pm, "assembled-offsets.img", criu::serializePagemap(assembled));

  // Conntrack records: an established TCP flow behind DNAT, a UDP flow, an
  // ICMP echo, and an empty set.
  const std::string ct = root + "/conntrack";
  net::ConntrackEntry tcp;
  tcp.origSrc = addr("10.99.0.2");
  tcp.origDst = addr("10.200.1.10");
  tcp.replSrc = addr("10.200.1.10");
  tcp.replDst = addr("10.99.0.2");
  tcp.origSport = 40000;
  tcp.origDport = 7000;
  tcp.replSport = 7000;
  tcp.replDport = 40000;
  tcp.status = 0x18e;  // SEEN_REPLY | ASSURED | CONFIRMED | SRC_NAT_DONE | DST_NAT_DONE
  tcp.timeout = 431999;
  tcp.mark = 0x10;
  tcp.proto = IPPROTO_TCP;
  tcp.tcpState = 3;  // ESTABLISHED
  tcp.tcpFlagsOrig = tcp.tcpFlagsRepl = 0x22;
  tcp.tcpWscaleOrig = tcp.tcpWscaleRepl = 7;
  net::ConntrackEntry udp;
  udp.origSrc = addr("10.200.1.10");
  udp.origDst = addr("10.200.2.20");
  udp.replSrc = addr("10.200.2.20");
  udp.replDst = addr("10.200.1.10");
  udp.origSport = udp.replDport = 53000;
  udp.origDport = udp.replSport = 53;
  udp.status = 0x8;
  udp.timeout = 30;
  udp.zone = 2;
  udp.proto = IPPROTO_UDP;
  net::ConntrackEntry icmp;
  icmp.origSrc = icmp.replDst = addr("10.200.1.10");
  icmp.origDst = icmp.replSrc = addr("10.99.0.11");
  icmp.icmpId = 4242;
  icmp.icmpType = 8;
  icmp.proto = IPPROTO_ICMP;
  icmp.timeout = 29;
  ok &= put(ct, "flows.bin", net::encodeConntrack({tcp, udp, icmp}));
  ok &= put(ct, "one-tcp.bin", net::encodeConntrack({tcp}));
  ok &= put(ct, "empty.bin", net::encodeConntrack({}));

  // CRIU FIFO images: files.img naming a FIFO of a bind and one of the
  // writable area, and fifo-data.img with the bytes waiting in each.
  const std::string ff = root + "/criu_fifo";
  auto image = [](uint32_t magic) {
    std::string out(reinterpret_cast<const char*>(&criu::kImgCommonMagic), 4);
    return out.append(reinterpret_cast<const char*>(&magic), 4);
  };
  auto append = [](std::string& img, const google::protobuf::MessageLite& m, const std::string& trailing) {
    std::string body = m.SerializeAsString();
    uint32_t len = static_cast<uint32_t>(body.size());
    img.append(reinterpret_cast<const char*>(&len), 4);
    img += body + trailing;
  };
  std::string files = image(criu::kFilesMagic);
  uint32_t id = 1;
  for (const char* path : {"/shared/fifo", "/tmp/own-fifo"}) {
    criu::pb::FileEntry reg;
    reg.set_type(1);
    reg.set_id(id);
    reg.mutable_reg()->set_id(id);
    reg.mutable_reg()->set_name(path);
    append(files, reg, "");
    criu::pb::FileEntry fifo;
    fifo.set_type(3);
    fifo.set_id(id + 1);
    fifo.mutable_fifo()->set_id(id + 1);
    fifo.mutable_fifo()->set_pipe_id(500 + id);
    fifo.mutable_fifo()->set_regf_id(id);
    append(files, fifo, "");
    id += 2;
  }
  ok &= put(ff, "files.img", files);
  std::string data = image(criu::kFifoDataMagic);
  for (uint32_t pipe : {501u, 503u}) {
    criu::pb::PipeData d;
    d.set_pipe_id(pipe);
    const std::string bytes = "1\n2\n3\n" + std::to_string(pipe) + "\n";
    d.set_bytes(static_cast<uint32_t>(bytes.size()));
    d.set_size(65536);
    append(data, d, bytes);
  }
  ok &= put(ff, "fifo-data.img", data);

  // A checkpoint file: the container, one stream of two chunks, the
  // network state, the end.
  const std::string ck = root + "/checkpoint_file";
  std::string file;
  auto w = cli::CheckpointWriter::start([&](const char* d, size_t n) {
    file.append(d, n);
    return okStatus();
  });
  v1::CheckpointRecord rec;
  rec.mutable_prepare()->set_migration_id("0123456789abcdef");
  rec.mutable_prepare()->set_source("n1");
  rec.mutable_prepare()->mutable_spec()->set_name("web");
  rec.mutable_prepare()->mutable_spec()->set_ip("10.200.1.10");
  ok &= w.ok() && w->add(rec).ok();
  rec.Clear();
  rec.mutable_chunk()->set_path("inventory.img");
  rec.mutable_chunk()->mutable_meta()->set_size(4);
  ok &= w->add(rec).ok();
  rec.Clear();
  rec.mutable_chunk()->set_path("inventory.img");
  rec.mutable_chunk()->set_data("abcd");
  ok &= w->add(rec).ok();
  rec.Clear();
  rec.set_stream_end(true);
  ok &= w->add(rec).ok();
  rec.Clear();
  rec.mutable_restore()->mutable_net()->set_rules_json(R"({"container":"web","ip":"10.200.1.10","rules":[]})");
  ok &= w->add(rec).ok();
  ok &= w->end("n1", 1764892800000).ok();
  ok &= put(ck, "small.ckpt", file);
  return ok ? 0 : 1;
}
