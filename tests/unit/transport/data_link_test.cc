// The data link over loopback: a cluster CA, node certificates and a rogue
// CA made with the openssl tool (as the test bed makes them), real TLS 1.3
// handshakes and real sockets.
#include "lxmig/transport/data_link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "lxmig/base/files.h"

namespace lxmig::transport {
namespace {

class DataLinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/lxmig-datalink-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    const std::string d = *dir_;
    auto sh = [&](const std::string& cmd) {
      ASSERT_EQ(std::system(("cd " + d + " && " + cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
    };
    auto ca = [&](const std::string& name) {
      sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " +
         name + ".crt -days 2 -subj /CN=" + name);
    };
    auto cert = [&](const std::string& name, const std::string& caName, const std::string& san) {
      sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name + ".key -out " + name +
         ".csr -subj /CN=" + name);
      ASSERT_TRUE(writeFileAtomic(d + "/" + name + ".ext",
                                  "subjectAltName=" + san + "\nextendedKeyUsage=serverAuth,clientAuth\n")
                      .ok());
      sh("openssl x509 -req -in " + name + ".csr -CA " + caName + ".crt -CAkey " + caName +
         ".key -CAcreateserial -days 2 -extfile " + name + ".ext -out " + name + ".crt");
    };
    ca("ca");
    ca("rogueca");
    cert("n1", "ca", "DNS:n1,IP:127.0.0.1");
    cert("n2", "ca", "DNS:n2,IP:127.0.0.1");
    cert("rogue", "rogueca", "DNS:n1,IP:127.0.0.1");
    cert("stranger", "ca", "DNS:stranger,IP:127.0.0.1");
  }
  static void TearDownTestSuite() {
    if (dir_) (void)removeTree(*dir_);
    delete dir_;
    dir_ = nullptr;
  }

  static TlsIdentity identity(const std::string& node, const std::string& caName = "ca") {
    auto r = [](const std::string& p) {
      auto t = readFile(p);
      return t.ok() ? *t : std::string();
    };
    return {r(*dir_ + "/" + caName + ".crt"), r(*dir_ + "/" + node + ".crt"), r(*dir_ + "/" + node + ".key")};
  }

  // The cluster of these tests: n1 and n2.
  static Result<std::string> authorize(const std::vector<std::string>& names) {
    for (const auto& n : names)
      if (n == "n1" || n == "n2") return n;
    return Status(Code::kPermissionDenied, "names no node of the cluster");
  }
  using Handler = std::function<Result<v1::TransferReply>(const ChunkSource&)>;
  static ChunkHandler fromAnyNode(Handler h) {
    return [h = std::move(h)](const std::string&, const ChunkSource& next) { return h(next); };
  }
  // A server on a free loopback port whose handler collects everything.
  std::unique_ptr<DataServer> serve(Handler h) {
    auto s = DataServer::start(identity("n2"), "127.0.0.1:0", authorize, fromAnyNode(std::move(h)));
    EXPECT_TRUE(s.ok()) << s.status().toString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  static std::string* dir_;
};
std::string* DataLinkTest::dir_ = nullptr;

std::string randomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

TEST_F(DataLinkTest, ChunksArriveWholeAndInOrderAndTheReplyComesBack) {
  std::vector<v1::TransferChunk> got;
  auto srv = serve([&](const ChunkSource& next) -> Result<v1::TransferReply> {
    v1::TransferChunk c;
    uint64_t bytes = 0;
    for (;;) {
      LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
      if (!more) break;
      bytes += c.data().size();
      got.push_back(c);
    }
    v1::TransferReply r;
    r.set_bytes(bytes);
    r.set_files(static_cast<uint32_t>(got.size()));
    return r;
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("n1"), "127.0.0.1", srv->port(), 2000);
  ASSERT_TRUE(w.ok()) << w.status().toString();
  EXPECT_STREQ((*w)->kind(), "data link (AES-128-OCB)") << "both ends offer OCB";
  const std::vector<size_t> sizes = {0, 1, 4096, 1 << 20, 3 << 20, 12345, 0, 1 << 20};
  std::vector<std::string> sent;
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    v1::TransferChunk c;
    c.set_migration_id("m1");
    c.set_path("pages-" + std::to_string(i) + ".img");
    c.set_offset(i * 7);
    c.set_data(randomBytes(sizes[i], i));
    sent.push_back(c.data());
    total += sizes[i];
    ASSERT_TRUE((*w)->write(c));
  }
  auto r = (*w)->finish();
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->bytes(), total);
  EXPECT_EQ(r->files(), sizes.size());
  ASSERT_EQ(got.size(), sizes.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].migration_id(), "m1");
    EXPECT_EQ(got[i].path(), "pages-" + std::to_string(i) + ".img");
    EXPECT_EQ(got[i].offset(), i * 7);
    EXPECT_TRUE(got[i].data() == sent[i]) << "chunk " << i;
  }
}

// A chunk larger than a frame may carry (a pre-copy round's pagemap of a
// large, scattered dirty set) arrives as consecutive chunks at their
// offsets, the file's header with the first; the receiver refuses nothing.
TEST_F(DataLinkTest, AChunkLargerThanAFrameArrivesInPieces) {
  std::vector<v1::TransferChunk> got;
  auto srv = serve([&](const ChunkSource& next) -> Result<v1::TransferReply> {
    v1::TransferChunk c;
    for (;;) {
      LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
      if (!more) break;
      got.push_back(c);
    }
    return v1::TransferReply{};
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("n1"), "127.0.0.1", srv->port(), 2000);
  ASSERT_TRUE(w.ok()) << w.status().toString();
  const std::string big = randomBytes((9 << 20) + 4096, 7);
  v1::TransferChunk c;
  c.set_migration_id("m1");
  c.set_path("rounds/1/pagemap-1.img");
  c.mutable_meta()->set_size(big.size() + 100);
  c.set_offset(100);
  c.set_data(big);
  ASSERT_TRUE((*w)->write(c));
  auto r = (*w)->finish();
  ASSERT_TRUE(r.ok()) << r.status().toString();
  ASSERT_EQ(got.size(), 3u);
  std::string joined;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].path(), "rounds/1/pagemap-1.img");
    EXPECT_EQ(got[i].has_meta(), i == 0);
    EXPECT_EQ(got[i].offset(), 100 + joined.size());
    EXPECT_LE(got[i].data().size(), 4u << 20);
    joined += got[i].data();
  }
  EXPECT_TRUE(joined == big);
}

// Either end configured for GCM only (data_link_cipher = "aes-128-gcm"):
// the link agrees on GCM, and frames of every size (headers not a whole
// number of blocks, data with a partial last block) arrive intact.
TEST_F(DataLinkTest, AnEndThatAllowsOnlyGcmGetsGcm) {
  for (bool serverGcmOnly : {true, false}) {
    SCOPED_TRACE(serverGcmOnly ? "server GCM only" : "client GCM only");
    std::vector<std::string> got;
    TlsIdentity srvId = identity("n2"), cliId = identity("n1");
    (serverGcmOnly ? srvId : cliId).gcmOnly = true;
    auto srv = DataServer::start(srvId, "127.0.0.1:0", authorize,
                                 fromAnyNode([&](const ChunkSource& next) -> Result<v1::TransferReply> {
                                   v1::TransferChunk c;
                                   for (;;) {
                                     LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
                                     if (!more) break;
                                     got.push_back(c.path() + ":" + c.data());
                                   }
                                   return v1::TransferReply();
                                 }));
    ASSERT_TRUE(srv.ok()) << srv.status().toString();
    auto w = connectDataLink(cliId, "127.0.0.1", (*srv)->port(), 2000);
    ASSERT_TRUE(w.ok()) << w.status().toString();
    EXPECT_STREQ((*w)->kind(), "data link (AES-128-GCM)");
    std::vector<std::string> sent;
    for (size_t n : {size_t{0}, size_t{15}, size_t{17}, size_t{4096}, size_t{(1 << 20) + 3}}) {
      v1::TransferChunk c;
      c.set_path("f" + std::string(n % 7, 'x'));
      c.set_data(randomBytes(n, n));
      sent.push_back(c.path() + ":" + c.data());
      ASSERT_TRUE((*w)->write(c));
    }
    ASSERT_TRUE((*w)->finish().ok());
    EXPECT_TRUE(got == sent);
  }
}

TEST_F(DataLinkTest, TheReceiversErrorStopsTheSenderAndIsWhatItReports) {
  std::atomic<int> seen{0};
  auto srv = serve([&](const ChunkSource& next) -> Result<v1::TransferReply> {
    v1::TransferChunk c;
    while (true) {
      LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
      if (!more) break;
      if (++seen == 3) return Status(Code::kAborted, "checksum mismatch in `pages-1.img` at offset 42");
    }
    return v1::TransferReply();
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("n1"), "127.0.0.1", srv->port(), 2000);
  ASSERT_TRUE(w.ok()) << w.status().toString();
  // Far more than any socket buffer: the sender must notice and stop.
  int written = 0;
  for (; written < 2000; ++written) {
    v1::TransferChunk c;
    c.set_data(std::string(1 << 20, 'x'));
    if (!(*w)->write(c)) break;
  }
  EXPECT_LT(written, 2000) << "the sender went on after the receiver stopped";
  auto r = (*w)->finish();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kAborted);
  EXPECT_EQ(r.status().message(), "checksum mismatch in `pages-1.img` at offset 42");
}

TEST_F(DataLinkTest, ACertificateOfAnotherCaIsRefusedBeforeAnyChunk) {
  std::atomic<bool> called{false};
  auto srv = serve([&](const ChunkSource&) -> Result<v1::TransferReply> {
    called = true;
    return v1::TransferReply();
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("rogue", "ca"), "127.0.0.1", srv->port(), 2000);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kPermissionDenied) << w.status().toString();
  // And a client that trusts another CA does not accept the server.
  auto w2 = connectDataLink(identity("n1", "rogueca"), "127.0.0.1", srv->port(), 2000);
  ASSERT_FALSE(w2.ok());
  EXPECT_EQ(w2.status().code(), Code::kPermissionDenied);
  EXPECT_NE(w2.status().message().find("certificate"), std::string::npos) << w2.status().message();
  EXPECT_FALSE(called);
}

// The cluster CA signed it, but it names no node: refused before any frame.
TEST_F(DataLinkTest, ACertificateNamingNoNodeIsRefusedBeforeAnyChunk) {
  std::atomic<bool> called{false};
  auto srv = serve([&](const ChunkSource&) -> Result<v1::TransferReply> {
    called = true;
    return v1::TransferReply();
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("stranger"), "127.0.0.1", srv->port(), 2000);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kPermissionDenied) << w.status().toString();
  EXPECT_FALSE(called);
}

TEST_F(DataLinkTest, TheHandlerLearnsWhichNodeSends) {
  std::string from;
  auto s = DataServer::start(identity("n2"), "127.0.0.1:0", authorize,
                             [&](const std::string& peer, const ChunkSource& next) -> Result<v1::TransferReply> {
                               from = peer;
                               v1::TransferChunk c;
                               while (true) {
                                 LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
                                 if (!more) break;
                               }
                               return v1::TransferReply();
                             });
  ASSERT_TRUE(s.ok()) << s.status().toString();
  auto w = connectDataLink(identity("n1"), "127.0.0.1", (*s)->port(), 2000);
  ASSERT_TRUE(w.ok()) << w.status().toString();
  ASSERT_TRUE((*w)->finish().ok());
  EXPECT_EQ(from, "n1");
}

// A client that trickles its handshake in a byte at a time cannot hold a
// connection slot for longer than the handshake deadline (10 s in all; the
// socket's timeout alone restarted with every byte).
TEST_F(DataLinkTest, ASlowHandshakeIsCutOffAtItsDeadline) {
  auto srv = serve([](const ChunkSource&) -> Result<v1::TransferReply> { return v1::TransferReply(); });
  ASSERT_TRUE(srv);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(srv->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";  // a ClientHello, begun
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (size_t i = 0; i < 30 && !closed; ++i) {
    if (::send(fd.get(), hello + (i % (sizeof hello - 1)), 1, MSG_NOSIGNAL) != 1) closed = true;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 1000) > 0) {
      char b;
      if (::recv(fd.get(), &b, 1, 0) <= 0) closed = true;
    }
  }
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(closed) << "the server still holds the connection after " << secs << " s";
  EXPECT_LE(secs, 13);
}

TEST_F(DataLinkTest, TheServerMustCarryTheNameThatWasDialled) {
  auto srv = serve([](const ChunkSource&) -> Result<v1::TransferReply> { return v1::TransferReply(); });
  ASSERT_TRUE(srv);
  // n2's certificate names n2 and 127.0.0.1, not "localhost".
  auto w = connectDataLink(identity("n1"), "localhost", srv->port(), 2000);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kPermissionDenied) << w.status().toString();
}

TEST_F(DataLinkTest, ALinkBrokenMidStreamIsAnErrorForTheReceiverNotAnEnd) {
  std::promise<Status> outcome;
  auto srv = serve([&](const ChunkSource& next) -> Result<v1::TransferReply> {
    v1::TransferChunk c;
    for (;;) {
      auto more = next(c);
      if (!more.ok()) {
        outcome.set_value(more.status());
        return more.status();
      }
      if (!*more) {
        outcome.set_value(okStatus());
        break;
      }
    }
    return v1::TransferReply();
  });
  ASSERT_TRUE(srv);
  {
    auto w = connectDataLink(identity("n1"), "127.0.0.1", srv->port(), 2000);
    ASSERT_TRUE(w.ok()) << w.status().toString();
    v1::TransferChunk c;
    c.set_data("some bytes");
    ASSERT_TRUE((*w)->write(c));
    (*w)->cancel();
    auto r = (*w)->finish();
    EXPECT_EQ(r.status().code(), Code::kCancelled);
  }
  auto f = outcome.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  Status st = f.get();
  EXPECT_FALSE(st.ok()) << "a cut link was taken for the stream's end";
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.toString();
}

TEST_F(DataLinkTest, APortThatIsNoDataLinkFailsWithinTheTimeout) {
  // Something that accepts and never speaks TLS.
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(l, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  auto t0 = std::chrono::steady_clock::now();
  auto w = connectDataLink(identity("n1"), "127.0.0.1", ntohs(a.sin_port), 500);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(w.ok());
  EXPECT_LT(ms, 3000);
  ::close(l);
  // A closed port is Unavailable at once.
  auto w2 = connectDataLink(identity("n1"), "127.0.0.1", ntohs(a.sin_port), 500);
  ASSERT_FALSE(w2.ok());
  EXPECT_EQ(w2.status().code(), Code::kUnavailable) << w2.status().toString();
}

TEST_F(DataLinkTest, ServerStopsWithALinkOpen) {
  std::atomic<bool> inHandler{false};
  auto srv = serve([&](const ChunkSource& next) -> Result<v1::TransferReply> {
    inHandler = true;
    v1::TransferChunk c;
    for (;;) {
      LXMIG_ASSIGN_OR_RETURN(bool more, next(c));
      if (!more) break;
    }
    return v1::TransferReply();
  });
  ASSERT_TRUE(srv);
  auto w = connectDataLink(identity("n1"), "127.0.0.1", srv->port(), 2000);
  ASSERT_TRUE(w.ok());
  v1::TransferChunk c;
  c.set_data("x");
  ASSERT_TRUE((*w)->write(c));
  for (int i = 0; i < 200 && !inHandler; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  srv.reset();  // joins the connection's thread: must not hang
  auto r = (*w)->finish();
  EXPECT_FALSE(r.ok());
}

TEST(DataLinkBuffers, RecycledBuffersComeBackAtTheAskedSize) {
  std::string b = takeBuffer(1 << 20);
  EXPECT_EQ(b.size(), 1u << 20);
  const char* p = b.data();
  recycleBuffer(std::move(b));
  std::string again = takeBuffer(4096);
  EXPECT_EQ(again.size(), 4096u);
  EXPECT_EQ(again.data(), p) << "the recycled buffer was not reused";
  recycleBuffer(std::string(100, 'x'));  // too small to keep: dropped
}

}  // namespace
}  // namespace lxmig::transport
