// The pages a migration target already holds, for the CRIU that lxmig
// builds with criu/patches/criu-4.2.1-held-pages.patch: given this file
// (the environment variable LXMIG_CRIU_HELD names it), a dump writes those
// pages as PARENT holes instead of draining them through its parasite, and
// a process's page file that lxmig linked to /dev/null becomes a real file
// holding only what the target lacks. A CRIU without the patch ignores the
// variable and dumps every page, which the pre-copy rewrite handles as
// before (migration/precopy.h).
//
// Layout (the host's byte order, which is CRIU's): "LXMIGHL1", u32
// processes, u32 0; per process u32 pid (inside the dumped pid namespace),
// u32 0, u64 ranges, then per range u64 start, u64 end: page-aligned,
// start < end, ascending, not overlapping.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "lxmig/tracking/page_set.h"

namespace lxmig::criu {

// What the patched CRIU prints in `criu --version` (the patch's level).
inline constexpr char kHeldPagesVersionLine[] = "lxmig: held-pages ";

// Pid inside the container -> the pages the target holds of it. Ranges are
// cut to whole pages; empty sets are left out.
std::string serializeHeldPages(const std::map<uint32_t, tracking::PageSet>& held);

}  // namespace lxmig::criu
