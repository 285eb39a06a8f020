// The cluster's certificates (transport/pki.h): a CA and node certificates
// it signs, their names, validity and extensions as TLS peers check them,
// renewal with and without the old key, and one-line refusals of bad input.
#include "lxmig/transport/pki.h"

#include <gtest/gtest.h>

#include <ctime>

namespace lxmig::transport {
namespace {

TEST(PkiTest, ANodeCertificateNamesTheNodeAndItsAddressAndChainsToTheCa) {
  auto ca = makeCa("test CA", 30);
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto caInfo = describeCert(ca->certPem);
  ASSERT_TRUE(caInfo.ok());
  EXPECT_TRUE(caInfo->isCa);
  EXPECT_EQ(caInfo->commonName, "test CA");

  auto n1 = issueNodeCert(*ca, "n1", "192.0.2.11", 10);
  ASSERT_TRUE(n1.ok()) << n1.status().message();
  auto info = describeCert(n1->certPem);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->isCa);
  EXPECT_EQ(info->commonName, "n1");
  EXPECT_EQ(info->dnsNames, std::vector<std::string>{"n1"});
  EXPECT_EQ(info->ips, std::vector<std::string>{"192.0.2.11"});
  const int64_t now = std::time(nullptr);
  EXPECT_LE(info->notBeforeS, now - 200) << "no slack for clocks behind";
  EXPECT_NEAR(static_cast<double>(info->notAfterS - now), 10 * 86400.0, 600.0);
  EXPECT_EQ(info->sha256.size(), 64u);
  EXPECT_TRUE(verifyCert(ca->certPem, n1->certPem).ok());
  EXPECT_NE(n1->keyPem.find("BEGIN PRIVATE KEY"), std::string::npos);

  // A host name and an IPv6 address land in the right kind of name.
  auto byName = issueNodeCert(*ca, "n2", "node2.example", 10);
  ASSERT_TRUE(byName.ok());
  EXPECT_EQ(describeCert(byName->certPem)->dnsNames, (std::vector<std::string>{"n2", "node2.example"}));
  auto v6 = issueNodeCert(*ca, "n3", "2001:db8::3", 10);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(describeCert(v6->certPem)->ips, std::vector<std::string>{"2001:db8::3"});
}

TEST(PkiTest, AnotherCaDoesNotVouchForIt) {
  auto ca = makeCa("cluster", 30);
  auto rogue = makeCa("rogue", 30);
  ASSERT_TRUE(ca.ok() && rogue.ok());
  auto n1 = issueNodeCert(*rogue, "n1", "192.0.2.11", 10);
  ASSERT_TRUE(n1.ok());
  Status st = verifyCert(ca->certPem, n1->certPem);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().find('\n'), std::string::npos);
  // A CA key that is not its certificate's cannot sign.
  KeyAndCert mixed{rogue->keyPem, ca->certPem};
  EXPECT_FALSE(issueNodeCert(mixed, "n1", "192.0.2.11", 10).ok());
}

TEST(PkiTest, RenewalKeepsTheKeyOnlyWhenAsked) {
  auto ca = makeCa("cluster", 30);
  ASSERT_TRUE(ca.ok());
  auto first = issueNodeCert(*ca, "n1", "192.0.2.11", 10);
  ASSERT_TRUE(first.ok());
  auto kept = issueNodeCert(*ca, "n1", "192.0.2.11", 20, first->keyPem);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->keyPem, first->keyPem);
  EXPECT_NE(kept->certPem, first->certPem);
  auto fresh = issueNodeCert(*ca, "n1", "192.0.2.11", 20);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->keyPem, first->keyPem);
}

TEST(PkiTest, BadNamesAddressesAndLifetimesAreRefusedInOneLine) {
  auto ca = makeCa("cluster", 30);
  ASSERT_TRUE(ca.ok());
  const std::vector<std::pair<std::string, std::string>> bad = {{"../n1", "192.0.2.1"}, {"n1\nx", "192.0.2.1"},
                                                                {"", "192.0.2.1"},      {"n1", "192.0.2.1:7443"},
                                                                {"n1", "a,DNS:evil"},   {"n1", ""}};
  for (const auto& [node, address] : bad) {
    auto r = issueNodeCert(*ca, node, address, 10);
    ASSERT_FALSE(r.ok()) << node << " " << address;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(issueNodeCert(*ca, "n1", "192.0.2.1", 0).ok());
  EXPECT_FALSE(issueNodeCert(*ca, "n1", "192.0.2.1", 36501).ok());
  EXPECT_FALSE(makeCa("two\nlines", 30).ok());
  EXPECT_FALSE(makeCa("", 30).ok());
  EXPECT_FALSE(describeCert("not a certificate").ok());
}

}  // namespace
}  // namespace lxmig::transport
