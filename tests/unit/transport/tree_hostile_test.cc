// Trees from a hostile container, both ways: the receiver never writes
// outside its root whatever the tree already holds and whatever paths the
// peer sends, an entry that changed type is replaced, and the sender sends
// links as links, never what they point to.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/transport/tree_transfer.h"
#include "unit/temp_dir.h"

namespace lxmig::transport {
namespace {

class HostileTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    ASSERT_TRUE(makeDirs(root(), 0755).ok());
    ASSERT_TRUE(makeDirs(outside(), 0755).ok());
    ASSERT_TRUE(writeFileAtomic(outside() + "/secret", "host secret\n", 0600).ok());
  }
  std::string root() const { return tmp_.path() + "/root"; }
  std::string outside() const { return tmp_.path() + "/host"; }
  // Everything under the outside directory, to prove nothing reached it.
  std::vector<std::string> outsideEntries() { return listDir(outside()).value_or({}); }

  static v1::TransferChunk meta(const std::string& path, v1::FileMeta::Type type, const std::string& link = "",
                                uint64_t size = 0) {
    v1::TransferChunk c;
    c.set_migration_id("0123456789abcdef");
    c.set_path(path);
    auto* m = c.mutable_meta();
    m->set_type(type);
    m->set_mode(type == v1::FileMeta::DIRECTORY ? 0755 : 0644);
    m->set_uid(::getuid());
    m->set_gid(::getgid());
    m->set_size(size);
    m->set_link_target(link);
    return c;
  }
  static v1::TransferChunk data(const std::string& path, const std::string& bytes, uint64_t offset = 0) {
    v1::TransferChunk c;
    c.set_migration_id("0123456789abcdef");
    c.set_path(path);
    c.set_offset(offset);
    c.set_data(bytes);
    return c;
  }
  Status file(TreeWriter& w, const std::string& path, const std::string& content) {
    LXMIG_RETURN_IF_ERROR(w.apply(meta(path, v1::FileMeta::REGULAR, "", content.size())));
    LXMIG_RETURN_IF_ERROR(w.apply(data(path, content)));
    return w.finish();
  }

  lxmig::testing::TempDir tmp_{"lxmig-hostile"};
};

TEST_F(HostileTreeTest, PathsOutsideTheTreeAreRefused) {
  TreeWriter w(root(), false);
  for (const char* p : {"../x", "/etc/passwd", "a/../../x", "a//b", "a/./b", "", "a/", "./a"}) {
    SCOPED_TRACE(p);
    Status st = w.apply(meta(p, v1::FileMeta::REGULAR));
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.toString();
  }
  EXPECT_EQ(w.apply(meta(".", v1::FileMeta::SYMLINK, outside())).code(), Code::kInvalidArgument);
  EXPECT_EQ(w.apply(meta(".", v1::FileMeta::DELETED)).code(), Code::kInvalidArgument);
  EXPECT_EQ(outsideEntries(), std::vector<std::string>{"secret"});
}

// The tree already holds a link to a host directory (the pass before the
// freeze sent it, or the container swapped it in): nothing is written
// through it, whatever comes.
TEST_F(HostileTreeTest, NothingIsWrittenThroughALinkInTheTree) {
  ASSERT_EQ(::symlink(outside().c_str(), (root() + "/d").c_str()), 0);
  TreeWriter w(root(), false);
  Status st = file(w, "d/planted", "evil\n");
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.toString();
  EXPECT_EQ(w.apply(meta("d/sub", v1::FileMeta::DIRECTORY)).code(), Code::kFailedPrecondition);
  EXPECT_EQ(w.apply(meta("d/l", v1::FileMeta::SYMLINK, "/")).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(w.apply(meta("d/secret", v1::FileMeta::DELETED)).ok()) << "a path through a link holds nothing";
  EXPECT_EQ(outsideEntries(), std::vector<std::string>{"secret"});
  EXPECT_EQ(readFile(outside() + "/secret").value_or(""), "host secret\n");
}

// A hard link the peer asks for names a file of the tree, never one
// outside it, through a link, or anything but a regular file; and a file
// written through a name that is a hard link stays in the tree.
TEST_F(HostileTreeTest, AHardLinkNamesOnlyARegularFileOfTheTree) {
  ASSERT_EQ(::symlink(outside().c_str(), (root() + "/d").c_str()), 0);
  ASSERT_EQ(::symlink((outside() + "/secret").c_str(), (root() + "/f").c_str()), 0);
  TreeWriter w(root(), false);
  ASSERT_TRUE(w.apply(meta("dir", v1::FileMeta::DIRECTORY)).ok());
  for (const char* target : {"../host/secret", "/etc/passwd", "a/../../x", "", ".", "f", "dir"}) {
    SCOPED_TRACE(target);
    Status st = w.apply(meta("l", v1::FileMeta::HARDLINK, target));
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.toString();
  }
  EXPECT_EQ(w.apply(meta("l", v1::FileMeta::HARDLINK, "d/secret")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(w.apply(meta("l", v1::FileMeta::HARDLINK, "missing")).code(), Code::kNotFound);
  EXPECT_EQ(w.apply(meta(".", v1::FileMeta::HARDLINK, "x")).code(), Code::kInvalidArgument);
  EXPECT_EQ(w.apply(meta("d/l", v1::FileMeta::HARDLINK, "x")).code(), Code::kFailedPrecondition);
  // A link in the place of the new name is replaced, not followed.
  ASSERT_TRUE(file(w, "x", "mine\n").ok());
  Status st = w.apply(meta("f", v1::FileMeta::HARDLINK, "x"));
  ASSERT_TRUE(st.ok()) << st.toString();
  ASSERT_TRUE(file(w, "f", "written through the second name\n").ok());
  EXPECT_EQ(readFile(root() + "/x").value_or(""), "written through the second name\n");
  struct stat host {};
  ASSERT_EQ(::stat((outside() + "/secret").c_str(), &host), 0);
  EXPECT_EQ(host.st_nlink, 1u);
  EXPECT_EQ(readFile(outside() + "/secret").value_or(""), "host secret\n");
  EXPECT_EQ(outsideEntries(), std::vector<std::string>{"secret"});
}

// The link itself, replaced by a file or a directory: the link goes, its
// target stays as it was.
TEST_F(HostileTreeTest, ALinkReplacedByAFileOrADirectoryLeavesItsTargetAlone) {
  ASSERT_EQ(::symlink((outside() + "/secret").c_str(), (root() + "/f").c_str()), 0);
  ASSERT_EQ(::symlink(outside().c_str(), (root() + "/d").c_str()), 0);
  TreeWriter w(root(), false);
  ASSERT_TRUE(file(w, "f", "container's own\n").ok());
  ASSERT_TRUE(w.apply(meta("d", v1::FileMeta::DIRECTORY)).ok());
  ASSERT_TRUE(file(w, "d/inside", "x").ok());
  struct stat st {};
  ASSERT_EQ(::lstat((root() + "/f").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(readFile(root() + "/f").value_or(""), "container's own\n");
  ASSERT_EQ(::lstat((root() + "/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(readFile(outside() + "/secret").value_or(""), "host secret\n");
  EXPECT_EQ(outsideEntries(), std::vector<std::string>{"secret"});
}

// Between the pass before the freeze and the delta a directory became a
// link: the link replaces it, and the delta's deletions of its old entries
// are no-ops that do not follow it.
TEST_F(HostileTreeTest, ADirectoryThatBecameALinkIsReplacedAndItsOldEntriesDeletedHarmlessly) {
  TreeWriter w(root(), false);
  ASSERT_TRUE(w.apply(meta("d", v1::FileMeta::DIRECTORY)).ok());
  ASSERT_TRUE(file(w, "d/secret", "container file\n").ok());
  ASSERT_TRUE(w.apply(meta("d", v1::FileMeta::SYMLINK, outside())).ok());
  ASSERT_TRUE(w.apply(meta("d/secret", v1::FileMeta::DELETED)).ok());
  char target[4096] = {};
  ASSERT_GT(::readlink((root() + "/d").c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), outside());
  EXPECT_EQ(readFile(outside() + "/secret").value_or(""), "host secret\n");
  EXPECT_TRUE(listDir(root()).ok());
  for (const auto& n : listDir(root()).value_or({})) EXPECT_EQ(n.rfind(".lxmig-new", 0), std::string::npos) << n;
}

TEST_F(HostileTreeTest, DataBeyondTheBudgetOrAnyFileSizeIsRefused) {
  ByteBudget budget(8);
  TreeWriter w(root(), false, &budget);
  ASSERT_TRUE(w.apply(meta("f", v1::FileMeta::REGULAR, "", 8)).ok());
  EXPECT_TRUE(w.apply(data("f", "12345678")).ok());
  Status st = w.apply(data("f", "9", 8));
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_EQ(w.apply(data("f", "x", uint64_t{1} << 62)).code(), Code::kInvalidArgument);
  EXPECT_EQ(w.apply(meta("g", v1::FileMeta::REGULAR, "", 1 << 20)).code(), Code::kResourceExhausted);
  EXPECT_TRUE(w.finish().ok());
}

// The sender: a link in the container's tree to a host directory is sent as
// that link; no file of the host travels.
TEST_F(HostileTreeTest, TheSenderSendsLinksAsLinks) {
  ASSERT_EQ(::symlink(outside().c_str(), (root() + "/d").c_str()), 0);
  ASSERT_EQ(::symlink((outside() + "/secret").c_str(), (root() + "/f").c_str()), 0);
  std::map<std::string, v1::FileMeta::Type> sent;
  bool hostData = false;
  auto sink = [&](v1::TransferChunk& c) {
    if (c.has_meta()) sent[c.path()] = c.meta().type();
    if (c.data().find("host secret") != std::string::npos) hostData = true;
    return true;
  };
  auto m = sendTree("0123456789abcdef", v1::TransferChunk::ROOTFS, root(), {}, sink, {});
  ASSERT_TRUE(m.ok()) << m.status().toString();
  EXPECT_EQ(sent, (std::map<std::string, v1::FileMeta::Type>{
                      {".", v1::FileMeta::DIRECTORY}, {"d", v1::FileMeta::SYMLINK}, {"f", v1::FileMeta::SYMLINK}}));
  EXPECT_FALSE(hostData);
  EXPECT_EQ(treeBytes(root()), 0u) << "treeBytes must not count what links point to";
}

// A FIFO in the tree (a container can make one at any time) does not
// block the sender; it travels as a node (CRIU reopens it by its path), its
// bytes do not.
TEST_F(HostileTreeTest, AFifoDoesNotBlockTheSenderAndArrivesAsAFifo) {
  ASSERT_EQ(::mkfifo((root() + "/pipe").c_str(), 0640), 0);
  std::vector<v1::TransferChunk> sent;
  auto m = sendTree("0123456789abcdef", v1::TransferChunk::ROOTFS, root(), {},
                    [&](v1::TransferChunk& c) {
                      sent.push_back(c);
                      return true;
                    },
                    {});
  ASSERT_TRUE(m.ok()) << m.status().toString();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].path(), "pipe");
  EXPECT_EQ(sent[1].meta().type(), v1::FileMeta::FIFO);
  const std::string dest = root() + "-copy";
  ASSERT_TRUE(makeDirs(dest, 0700).ok());
  TreeWriter w(dest, false, nullptr);
  for (const auto& c : sent) ASSERT_TRUE(w.apply(c).ok());
  ASSERT_TRUE(w.finish().ok());
  struct stat st {};
  ASSERT_EQ(::lstat((dest + "/pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  (void)removeTree(dest);
}

}  // namespace
}  // namespace lxmig::transport
