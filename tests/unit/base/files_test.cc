#include "lxmig/base/files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

namespace lxmig {
namespace {

TEST(FilesTest, WriteReadRemove) {
  char tmpl[] = "/tmp/lxmig-files-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  ASSERT_TRUE(makeDirs(dir + "/a/b/c").ok());
  ASSERT_TRUE(writeFileAtomic(dir + "/a/b/c/f", "hello").ok());
  auto r = readFile(dir + "/a/b/c/f");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "hello");
  ASSERT_TRUE(removeTree(dir).ok());
  EXPECT_FALSE(pathExists(dir));
  EXPECT_TRUE(removeTree(dir).ok()) << "removing a missing tree is not an error";
  EXPECT_EQ(readFile(dir + "/nope").status().code(), Code::kNotFound);
}

TEST(FilesTest, PositionalReadAndWriteAreWhole) {
  char tmpl[] = "/tmp/lxmig-files-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const std::string data(3 << 20, 'x');
  ASSERT_TRUE(pwriteAll(fd, data.data(), data.size(), 4096, tmpl).ok());
  std::string back(data.size(), '\0');
  ASSERT_TRUE(preadAll(fd, back.data(), back.size(), 4096, tmpl).ok());
  EXPECT_TRUE(back == data);
  Status past = preadAll(fd, back.data(), 10, 4096 + data.size() - 5, tmpl);
  EXPECT_FALSE(past.ok()) << "a read past the end is an error, not a short read";
  EXPECT_NE(past.message().find(tmpl), std::string::npos) << past.message();
  ::close(fd);
  ::unlink(tmpl);
}

TEST(FilesTest, StringHelpers) {
  EXPECT_EQ(split("a,,b,c", ','), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("a,,b", ',', false), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(trim("  x y \n"), "x y");
  uint64_t v = 0;
  EXPECT_TRUE(parseUint64("18446744073709551615", &v));
  EXPECT_EQ(v, 18446744073709551615ULL);
  EXPECT_FALSE(parseUint64("18446744073709551616", &v));
  EXPECT_FALSE(parseUint64("12a", &v));
  EXPECT_EQ(humanBytes(1536 * 1024), "1.5 MiB");
}

}  // namespace
}  // namespace lxmig

#include "lxmig/base/toml_lite.h"

namespace lxmig {
namespace {

TEST(TomlLiteTest, ParsesSectionsAndValues) {
  auto r = parseTomlLite(
      "# cluster\nnode = \"n1\"\nport = 7443 # comment\n[node.n2]\naddress = '10.99.0.12:7443'\n"
      "[node.n3]\naddress = \"x\"\n",
      "test.toml");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->get("node"), "n1");
  EXPECT_EQ(r->get("port"), "7443");
  EXPECT_EQ(r->get("node.n2.address"), "10.99.0.12:7443");
  EXPECT_EQ(r->tables("node"), (std::vector<std::string>{"n2", "n3"}));
}

TEST(TomlLiteTest, ErrorsNameFileAndLine) {
  auto r = parseTomlLite("a = 1\nbroken line\n", "agent.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "agent.conf:2: expected key = value");
  EXPECT_FALSE(parseTomlLite("a = \"x\n", "f").ok());
}

// A table or key with an empty dotted part (found by the fuzzer: `[node.]`
// made an inventory node without a name).
TEST(TomlLiteTest, EmptyNamesAreErrors) {
  for (const char* bad : {"[node.]\naddress = \"x\"\n", "[.node]\n", "[ ]\n", "a..b = 1\n", ".a = 1\n"})
    EXPECT_FALSE(parseTomlLite(bad, "f").ok()) << bad;
}

}  // namespace
}  // namespace lxmig
