// The tree receiver (transport::TreeWriter) on chunks a hostile peer makes
// up, in a tree that already holds links to a directory and a file outside
// it. Whatever the chunks, nothing outside the tree's root changes: the
// outside directory keeps exactly its one file, with its content and its
// one name.
//
// Input: a sequence of records: u8 op (entry type), u8 path length, path,
// u8 payload length, payload (a link target or file data).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/base/files.h"
#include "lxmig/transport/tree_transfer.h"

namespace {

// A directory per process, reused, removed when libFuzzer exits.
struct BaseDir {
  std::string path;
  ~BaseDir() {
    if (!path.empty()) (void)lxmig::removeTree(path);
  }
} g_base;

std::string base() {
  if (g_base.path.empty()) {
    char t[] = "/tmp/lxmig-fuzz-tree-XXXXXX";
    if (!::mkdtemp(t)) std::abort();
    g_base.path = t;
  }
  return g_base.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string b = base(), root = b + "/root", outside = b + "/outside";
  (void)lxmig::removeTree(root);
  (void)lxmig::removeTree(outside);
  LXMIG_FUZZ_CHECK(lxmig::makeDirs(root, 0755).ok() && lxmig::makeDirs(outside, 0755).ok());
  LXMIG_FUZZ_CHECK(lxmig::writeFileAtomic(outside + "/secret", "host secret", 0600).ok());
  LXMIG_FUZZ_CHECK(::symlink(outside.c_str(), (root + "/d").c_str()) == 0);
  LXMIG_FUZZ_CHECK(::symlink((outside + "/secret").c_str(), (root + "/f").c_str()) == 0);
  lxmig::transport::ByteBudget budget(1 << 20);
  {
    lxmig::transport::TreeWriter w(root, false, &budget);
    size_t at = 0;
    while (at + 3 <= size) {
      const uint8_t op = in[at++];
      const size_t plen = std::min<size_t>(in[at++], size - at);
      std::string path(reinterpret_cast<const char*>(in + at), plen);
      at += plen;
      if (at >= size) break;
      const size_t dlen = std::min<size_t>(in[at++], size - at);
      std::string payload(reinterpret_cast<const char*>(in + at), dlen);
      at += dlen;
      lxmig::v1::TransferChunk c;
      c.set_migration_id("0123456789abcdef");
      c.set_path(path);
      if (op % 7 == 6) {  // data for the file in progress
        c.set_offset(payload.empty() ? 0 : static_cast<uint8_t>(payload[0]) * 4096u);
        c.set_data(payload);
      } else {
        auto* m = c.mutable_meta();
        m->set_type(static_cast<lxmig::v1::FileMeta::Type>(op % 7));  // every type
        m->set_mode(0700 | (op & 0x7000));
        m->set_uid(::getuid());
        m->set_gid(::getgid());
        m->set_size(payload.size());
        m->set_link_target(payload);
      }
      (void)w.apply(c);
    }
    (void)w.finish();
  }
  auto names = lxmig::listDir(outside);
  LXMIG_FUZZ_CHECK(names.ok() && names->size() == 1 && (*names)[0] == "secret");
  LXMIG_FUZZ_CHECK(lxmig::readFile(outside + "/secret").value_or("") == "host secret");
  struct stat st {};
  LXMIG_FUZZ_CHECK(::lstat((outside + "/secret").c_str(), &st) == 0 && st.st_nlink == 1);  // linked nowhere else
  LXMIG_FUZZ_CHECK(::lstat(outside.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755);
  return 0;
}
