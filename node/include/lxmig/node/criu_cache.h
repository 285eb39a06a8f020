// CRIU's kernel probes (kerndat: ~45 ms per run here) are cached in
// /run/criu.kdat, which CRIU keeps only when /run is a tmpfs (a reboot must
// clear it). On a host whose /run is a plain directory, every dump, restore
// and lazy-pages start probes the kernel again, inside the frozen window
// (docs/benchmarks.md, 2026-12-05). keepCriuKerndat() gives such a host the
// cache: CRIU computes it in a private mount namespace whose /run is a
// tmpfs, the agent keeps the file on /dev/shm (a tmpfs, cleared by a reboot
// as well) and links /run/criu.kdat to it. A file already at that path is
// left alone; a CRIU that finds the cache stale removes the link and probes
// again (until the agent's next start).
//
//   LXMIG_LOG(kInfo, kLog) << keepCriuKerndat();   // at agent start
//   std::string s = criuKerndatState();            // for doctor
//   if (criuLeavesOutHeldPages()) ...              // pre-copy's dump
#pragma once

#include <string>

namespace lxmig::node {

// What was done, one line (never fails the agent's start: without the
// cache CRIU only runs slower).
std::string keepCriuKerndat();
// Where CRIU's cache stands now, one line; `ok` false when it has none.
std::string criuKerndatState(bool* ok);

// Whether the `criu` in PATH was built with lxmig's patch at the level this
// build writes (its version says "lxmig: held-pages 2"): its dump can
// leave out the pages a migration target holds (criu/held_pages.h). Asked
// once per process.
bool criuLeavesOutHeldPages();

// Whether the `criu` in PATH hands a Unix socket whose peer is in another
// network namespace over whole (criu/patches/criu-4.2.1-merge.patch:
// the dump names it external, the restore takes it from --inherit-fd), so
// that lxmig merge carries a connection between the merged containers.
inline constexpr char kUnixPeerVersionLine[] = "lxmig: unix-peer-elsewhere 1";
bool criuHandsOverUnixPeers();

// Whether the `criu` in PATH dumps and restores System V mappings without
// their IPC namespace when LXMIG_CRIU_SYSV_OUTSIDE is set (the same patch):
// lxmig merge copies the objects itself, same ids, into the kept
// container's namespace.
inline constexpr char kSysvOutsideVersionLine[] = "lxmig: sysv-outside 1";
bool criuDumpsSysvOutside();

// Whether the `criu` in PATH restores the accepted end of a connection to
// a listener of an abstract name with that name
// (criu/patches/criu-4.2.1-usk-names.patch: the pair is made through a
// listener of the name; stock CRIU leaves both ends unnamed).
inline constexpr char kAcceptedNameVersionLine[] = "lxmig: accepted-abstract-name 1";
bool criuNamesAcceptedEnds();

// Whether the `criu` in PATH restores a memfd's content (shared memory)
// with pwrite rather than through a mapping
// (criu/patches/criu-4.2.1-write-shmem.patch): no page-table fault per
// page in the frozen window, ~10x faster on a VM whose faults trap.
inline constexpr char kShmemWriteVersionLine[] = "lxmig: shmem-by-write 1";
bool criuWritesShmem();
// Built with lxmig's patch criu-4.2.1-userns-lazy.patch: a restored task in
// a user namespace of its own makes its userfaultfd through /dev/userfaultfd
// (opened by CRIU before any namespace), so such a container is restored
// lazily like any other.
inline constexpr char kUsernsLazyVersionLine[] = "lxmig: userns-lazy 1";
bool criuLazyInUserns();
// Built with lxmig's patch criu-4.2.1-shmem-listed.patch: a shared memory
// object whose page file goes to /dev/null (pre-copy: the agent rebuilds
// it) is listed by its data segments, its pages not moved through a pipe.
inline constexpr char kShmemListedVersionLine[] = "lxmig: shmem-listed 1";
bool criuListsDiscardedShmem();
// Built with lxmig's patch criu-4.2.1-shmem-held.patch: a memfd handed over
// as --inherit-fd fd[N]:lxmig-shmem:<shmid> becomes that restored shared
// memory object, its content not written (criu::PageStore's mirrors).
inline constexpr char kShmemHeldVersionLine[] = "lxmig: shmem-held 1";
bool criuTakesHeldShmem();
// Built with lxmig's patch criu-4.2.1-pagemap-offsets.patch: a pagemap
// entry may name where its pages start in the pages file (lxmig_off), so
// the pre-copy target hands its page store over as it is
// (criu::PageStore::withPagemapOffsets).
inline constexpr char kPagemapOffsetsVersionLine[] = "lxmig: pagemap-offsets 1";
bool criuReadsPagemapOffsets();

}  // namespace lxmig::node
