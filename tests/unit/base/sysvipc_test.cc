// base/sysvipc.h on tables as this kernel prints them, and on what it never
// prints (each an error naming the line).
#include "lxmig/base/sysvipc.h"

#include <gtest/gtest.h>

namespace lxmig {
namespace {

TEST(SysvTable, RowsByTheHeadersNames) {
  auto shm = parseSysvTable(
      "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      "
      "dtime      ctime                   rss                  swap\n"
      "         0          3   600                 65536  4242  4243      2     0     0     0     0 1700000000 0 "
      "1700000000                     0                     0\n"
      "-559038737          7  1644                  4096     1     1      0  1000   100     0     0 0 0 0 0 0\n");
  ASSERT_TRUE(shm.ok()) << shm.status().message();
  ASSERT_EQ(shm->size(), 2u);
  EXPECT_EQ((*shm)[0].id, 3);
  EXPECT_EQ((*shm)[0].perms, 0600u);
  EXPECT_EQ((*shm)[0].get("size"), 65536);
  EXPECT_EQ((*shm)[0].get("nattch"), 2);
  EXPECT_EQ((*shm)[1].key, -559038737);  // 0xdeadbeef, printed signed
  EXPECT_EQ((*shm)[1].perms, 01644u);    // SHM_DEST shows in perms
  EXPECT_EQ((*shm)[1].get("uid"), 1000);
  EXPECT_EQ((*shm)[1].get("nsems", -7), -7);

  auto sem = parseSysvTable("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
  ASSERT_TRUE(sem.ok());
  EXPECT_TRUE(sem->empty());
  EXPECT_TRUE(parseSysvTable("").value().empty());
}

TEST(SysvTable, WhatTheKernelNeverPrintsIsAnError) {
  const std::string header = "key semid perms nsems uid gid cuid cgid otime ctime\n";
  for (const std::string& bad : {
           std::string("id key perms\n1 2 3\n"),                   // not the header
           header + "1 2 600 1 0 0 0 0 0\n",                       // a column short
           header + "1 2 600 1 0 0 0 0 0 0 9\n",                   // one too many
           header + "1 -2 600 1 0 0 0 0 0 0\n",                    // a negative id
           header + "1 2147483648 600 1 0 0 0 0 0 0\n",            // an id beyond int32
           header + "1 2 680 1 0 0 0 0 0 0\n",                     // perms not octal
           header + "1 2 600 x 0 0 0 0 0 0\n",                     // not a number
           header + "1 2 600 99999999999999999999 0 0 0 0 0 0\n",  // beyond int64
       }) {
    auto r = parseSysvTable(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
}

}  // namespace
}  // namespace lxmig
