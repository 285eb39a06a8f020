// Pure /proc parsers on literal text.
#include "proc_parse.h"

#include <gtest/gtest.h>

namespace lxmig::grouping::internal {
namespace {

TEST(ProcParseTest, StatWithSpacesAndParensInComm) {
  auto st = parseStat("4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, 4242);
  EXPECT_EQ(st->comm, "my (odd) prog");
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 1);
  EXPECT_EQ(st->flags, 4194560u);
  EXPECT_EQ(st->startTime, 987654u);
  EXPECT_FALSE(parseStat("garbage"));
  EXPECT_FALSE(parseStat("12 (x) S 1"));
}

TEST(ProcParseTest, MapsLines) {
  auto m =
      parseMapsLine("7f1c2a000000-7f1c2a021000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->start, 0x7f1c2a000000u);
  EXPECT_EQ(m->end, 0x7f1c2a021000u);
  EXPECT_TRUE(m->shared());
  EXPECT_TRUE(m->writable());
  EXPECT_EQ(m->devMajor, 0u);
  EXPECT_EQ(m->devMinor, 1u);
  EXPECT_EQ(m->inode, 1234u);
  EXPECT_EQ(m->path, "/dev/zero (deleted)");
  auto lib = parseMapsLine("7f00-7f10 r-xp 00001000 fe:01 98765 /usr/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(lib);
  EXPECT_FALSE(lib->shared());
  EXPECT_EQ(lib->devMajor, 0xfeu);
  auto anon = parseMapsLine("7ffd0000-7ffd1000 rw-p 00000000 00:00 0");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->path, "");
  EXPECT_FALSE(parseMapsLine("nonsense"));
}

TEST(ProcParseTest, ContainerFromCgroup) {
  EXPECT_EQ(containerFromCgroup("0::/lxc.payload.web/init.scope\n"), "web");
  EXPECT_EQ(containerFromCgroup("4:memory:/lxit-n1/payload.db\n0::/lxit-n1/payload.db\n"), "db");
  EXPECT_EQ(containerFromCgroup("0::/user.slice/session-1.scope\n"), "");
  EXPECT_EQ(containerFromCgroup("0::/lxit-n1/monitor.db\n"), "");
  EXPECT_EQ(containerFromCgroup(""), "");
}

TEST(ProcParseTest, BracketInode) {
  EXPECT_EQ(bracketInode("pipe:[123]", "pipe"), 123u);
  EXPECT_EQ(bracketInode("socket:[77]", "socket"), 77u);
  EXPECT_EQ(bracketInode("net:[4026531840]", "net"), 4026531840u);
  EXPECT_FALSE(bracketInode("socket:[77]", "pipe"));
  EXPECT_FALSE(bracketInode("pipe:[x]", "pipe"));
  EXPECT_FALSE(bracketInode("/dev/null", "pipe"));
}

TEST(ProcParseTest, SysvShm) {
  auto m = parseSysvShm(
      "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      "
      "dtime      ctime                   rss                  swap\n"
      "         0          3   600                 65536  4242  4243      2     0     0     0     0 1700000000 0 "
      "1700000000                     0                     0\n"
      "     48879          7   644                  4096     1     1      0     0     0     0     0 0 0 0 0 0\n");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[3], "key 0x00000000 nattch 2 cpid 4242");
  EXPECT_EQ(m[7], "key 0x0000beef nattch 0 cpid 1");
}

TEST(ProcParseTest, NetLines) {
  auto l = parseNetLine(
      "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 "
      "0000000000000000 100 0 0 10 0",
      "tcp", false);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->inode, 12345u);
  EXPECT_EQ(l->summary, "tcp 127.0.0.1:8000 LISTEN");
  auto e = parseNetLine(
      "   1: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 555 1 0 20 4 30 10 "
      "-1",
      "tcp", false);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->summary, "tcp 127.0.0.1:8000 -> 127.0.0.1:54321 ESTABLISHED");
  EXPECT_FALSE(
      parseNetLine("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
                   "timeout inode",
                   "tcp", false));
}

}  // namespace
}  // namespace lxmig::grouping::internal
