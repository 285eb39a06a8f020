// The pages a migration target already holds, for the CRIU that lxmig
// builds with criu/patches/criu-4.2.1-held-pages.patch: given this file
// (the environment variable LXMIG_CRIU_HELD names it), a dump writes those
// pages as PARENT holes instead of draining them through its parasite, and
// a process's page file that lxmig linked to /dev/null becomes a real file
// holding only what the target lacks. So does any other page file, but for
// the shared memory objects the file names (memfd files and shared
// anonymous mappings the agent found, whose discarded page files the
// rewrite rebuilds from the objects): an object the agent did not expect
// keeps its pages. A CRIU without the patch ignores the variable and
// dumps every page, which the pre-copy rewrite handles as before
// (migration/precopy.h).
//
// Layout (the host's byte order, which is CRIU's): "LXMIGHL2", u32
// processes, u32 shared memory objects; per process u32 pid (inside the
// dumped pid namespace), u32 0, u64 ranges, then per range u64 start, u64
// end: page-aligned, start < end, ascending, not overlapping; then per
// object its u64 shmid (CRIU's: the object's inode).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lxmig/tracking/page_set.h"

namespace lxmig::criu {

// What the patched CRIU prints in `criu --version`: the patch's level,
// the one this file's layout is.
inline constexpr char kHeldPagesVersionLine[] = "lxmig: held-pages 2";

// Pid inside the container -> the pages the target holds of it (ranges are
// cut to whole pages; empty sets are left out), and the shmids of the
// shared memory objects whose page files stay discarded.
std::string serializeHeldPages(const std::map<uint32_t, tracking::PageSet>& held,
                               const std::vector<uint64_t>& rebuiltShmids = {});

}  // namespace lxmig::criu
