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
  EXPECT_EQ(*readFileHead(dir + "/a/b/c/f", 3), "hel");
  EXPECT_EQ(*readFileHead(dir + "/a/b/c/f", 100), "hello");
  EXPECT_EQ(*readFileHead(dir + "/a/b/c/f", 0), "");
  ASSERT_TRUE(removeTree(dir).ok());
  EXPECT_FALSE(pathExists(dir));
  EXPECT_TRUE(removeTree(dir).ok()) << "removing a missing tree is not an error";
  EXPECT_EQ(readFile(dir + "/nope").status().code(), Code::kNotFound);
}

TEST(FilesTest, ADirectoryBeneathAProcesssRootFollowsNoLink) {
  char tmpl[] = "/tmp/lxmig-files-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, rel = dir.substr(1);  // beneath this process's root
  ASSERT_TRUE(makeDirs(dir + "/d").ok());
  ASSERT_EQ(::symlink((dir + "/d").c_str(), (dir + "/l").c_str()), 0);
  std::string shown;
  auto d = openDirBeneathRootOf(::getpid(), rel + "/d", &shown);
  ASSERT_TRUE(d.ok()) << d.status().toString();
  EXPECT_EQ(shown, "/proc/" + std::to_string(::getpid()) + "/root" + dir + "/d");
  EXPECT_EQ(openDirBeneathRootOf(::getpid(), rel + "/l", &shown).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(openDirBeneathRootOf(::getpid(), rel + "/none", &shown).status().code(), Code::kNotFound);
  ASSERT_TRUE(removeTree(dir).ok());
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

TEST(FilesTest, ProgramDirHoldsThisBinary) {
  // Where lxmigd finds its helpers: this test's own directory here.
  auto dir = programDir();
  ASSERT_TRUE(dir.ok()) << dir.status().toString();
  EXPECT_EQ(dir->front(), '/');
  EXPECT_NE(dir->back(), '/');
  EXPECT_TRUE(pathExists(*dir + "/base_unit_test")) << *dir;
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

#include "lxmig/base/toml.h"

namespace lxmig {
namespace {

TEST(TomlTest, ParsesTablesValuesAndArrays) {
  auto r = parseToml(
      "# cluster\nname = \"n1\"\nport = 7443 # comment\non = true\nratio = 0.5\n"
      "devices = [\"/dev/fuse\", \"gpu=/dev/nvidia0\"]\nnone = []\n"
      "[node.n2]\naddress = '10.99.0.12:7443'\n[node.n3]\naddress = \"x\"\n[node.empty]\n",
      "test.toml");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->get("name"), "n1");
  EXPECT_EQ(r->get("port"), "7443");
  EXPECT_EQ(r->get("on"), "true");
  EXPECT_EQ(r->get("ratio"), "0.5");
  EXPECT_EQ(r->get("node.n2.address"), "10.99.0.12:7443");
  EXPECT_EQ(r->list("devices"), (std::vector<std::string>{"/dev/fuse", "gpu=/dev/nvidia0"}));
  EXPECT_EQ(r->list("none"), std::vector<std::string>{});
  EXPECT_FALSE(r->list("name").has_value());
  EXPECT_FALSE(r->has("devices")) << "a list is not a scalar";
  EXPECT_EQ(r->tables("node"), (std::vector<std::string>{"n2", "n3"})) << "a table without keys is not named";
  EXPECT_EQ(r->lineOf("port"), 3);
}

TEST(TomlTest, ErrorsNameFileAndLine) {
  auto r = parseToml("a = 1\nbroken line\n", "agent.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("agent.conf:2: ", 0), 0u) << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  EXPECT_FALSE(parseToml("a = \"x\n", "f").ok());
  // A key both a value and a table.
  EXPECT_FALSE(parseToml("node = \"n1\"\n[node.n2]\naddress = \"x\"\n", "f").ok());
}

// What lxmig's files never hold is refused with its line: empty or odd key
// parts (the fuzzer once made `[node.]` an inventory node without a name),
// control characters in values (they would reach config files), dates,
// arrays of tables and nested arrays.
TEST(TomlTest, WhatConfigsNeverHoldIsRefused) {
  for (const char* bad : {"[node.]\naddress = \"x\"\n", "[.node]\n", "[ ]\n", "a..b = 1\n", ".a = 1\n", "\"a.b\" = 1\n",
                          "\"a b\" = 1\n", "a = \"x\\ny\"\n", "a = \"\\u0007\"\n", "d = 1979-05-27\n",
                          "[[node]]\na = 1\n", "a = [[1, 2]]\n", "a = [\"ok\", \"bad\\nline\"]\n"}) {
    auto r = parseToml(bad, "f");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().rfind("f:", 0), 0u) << r.status().message();
    }
  }
}

}  // namespace
}  // namespace lxmig
