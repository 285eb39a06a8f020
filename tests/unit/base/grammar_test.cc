// One test per rule of base/grammar.h: what passes, what does not, and that
// the error is one line naming the value.
#include "lxmig/base/grammar.h"

#include <gtest/gtest.h>

#include <string>

namespace lxmig {
namespace {

void expectBad(const Status& st, const std::string& shown) {
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.toString();
  EXPECT_NE(st.message().find(shown), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << "one line: " << st.message();
}

TEST(Grammar, ContainerNames) {
  for (const char* ok : {"web", "db-1", "a_b", "9lives"}) EXPECT_TRUE(checkContainerName(ok).ok()) << ok;
  EXPECT_TRUE(checkContainerName(std::string(48, 'x')).ok());
  for (const char* bad : {"", "-x", "_x", "a/b", "../x", "a b", "a.b", "web\n", "x$"})
    expectBad(checkContainerName(bad), "bad container name");
  expectBad(checkContainerName(std::string(49, 'x')), std::string(49, 'x'));
  expectBad(checkContainerName("a\nlxc.hook.pre-start = /bin/sh"), "a\\x0alxc.hook");
}

TEST(Grammar, NodeNames) {
  for (const char* ok : {"n1", "node-2.example", "a_b"}) EXPECT_TRUE(checkNodeName(ok).ok()) << ok;
  for (const char* bad : {"", ".n1", "n1/..", "n 1", "n1\t"}) expectBad(checkNodeName(bad), "bad node name");
  expectBad(checkNodeName(std::string(64, 'n')), "bad node name");
}

TEST(Grammar, MigrationIds) {
  EXPECT_TRUE(checkMigrationId("0123456789abcdef").ok());
  for (const char* bad :
       {"", "..", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "../../../state/x", "0123456789abcdeg"})
    expectBad(checkMigrationId(bad), "bad migration id");
}

TEST(Grammar, RelativePaths) {
  for (const char* ok : {".", "a", "a/b", "pages-1.img", "rounds/0001/pagemap-7.img", ".hidden", "a/..b"})
    EXPECT_TRUE(checkRelativePath(ok).ok()) << ok;
  for (const char* bad : {"", "/a", "a/", "a//b", "./a", "a/.", "..", "a/../b", "a/./b"})
    expectBad(checkRelativePath(bad), "bad path");
  expectBad(checkRelativePath(std::string("a\0b", 3)), "NUL");
  expectBad(checkRelativePath(std::string(256, 'x')), "255 bytes");
  std::string deep;
  for (int i = 0; i < 257; ++i) deep += (i ? "/" : "") + std::string("d");
  expectBad(checkRelativePath(deep), "256 components");
  expectBad(checkRelativePath(std::string(4097, 'x')), "4096 bytes");
}

TEST(Grammar, AbsolutePaths) {
  for (const char* ok : {"/", "/dev/fuse", "/srv/data"}) EXPECT_TRUE(checkAbsolutePath(ok).ok()) << ok;
  for (const char* bad : {"", "dev/fuse", "/dev/../etc", "/a//b", "/a/"}) expectBad(checkAbsolutePath(bad), "bad path");
}

TEST(Grammar, InterfaceNames) {
  for (const char* ok : {"lxbr0", "br-fab.0", "eth0", "fifteen-bytes-a"})
    EXPECT_TRUE(checkInterfaceName(ok, "bridge").ok()) << ok;
  for (const char* bad : {"", ".", "..", "a/b", "eth0:1", "has space", "tab\tx", "sixteen-bytes-ab"})
    expectBad(checkInterfaceName(bad, "bridge"), "bad bridge");
}

TEST(Grammar, PlainText) {
  EXPECT_TRUE(checkPlainText("A=b c;'\"$", "value").ok());
  for (const char* bad : {"a\nb", "a\rb", "a\x1b[31m", "a\x7f"})
    expectBad(checkPlainText(bad, "value"), "control character");
  expectBad(checkPlainText(std::string(5, 'x'), "value", 4), "longer than 4 bytes");
}

TEST(Grammar, BoundedNumbers) {
  EXPECT_EQ(parseUint("0", "n", 0, 10).value_or(99), 0u);
  EXPECT_EQ(parseUint("10", "n", 0, 10).value_or(99), 10u);
  EXPECT_EQ(parseUint("18446744073709551615", "n", 0, UINT64_MAX).value_or(0), UINT64_MAX);
  for (const char* bad :
       {"", "-1", "+1", " 1", "1 ", "1s", "0x10", "11", "18446744073709551616", "007", "99999999999999999999999"})
    expectBad(parseUint(bad, "rounds", 0, 10).status(), "bad rounds");
  expectBad(parseUint("0", "rounds", 1, 10).status(), "from 1 to 10");
}

TEST(Grammar, HostAndPort) {
  auto a = splitHostPort("10.99.0.12:7401");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "10.99.0.12");
  EXPECT_EQ(a->second, 7401);
  auto b = splitHostPort("[fd00::1]:7401");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "fd00::1");
  auto c = splitHostPort("n2.example:0");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->second, 0);
  for (const char* bad : {"", "10.99.0.12", "host:", ":7401", "host:70000", "fd00::1:7401", "host:7x", "host:+80",
                          "host: 80", "host:080", "a b:80", "a\nb:80"})
    EXPECT_FALSE(splitHostPort(bad).ok()) << bad;
}

}  // namespace

}  // namespace lxmig
