// lxmig-lxc copy-ipc and drop-ipc: what lxmig merge does with the System V
// objects of a merged container's IPC namespace (shared memory segments,
// semaphore sets, message queues). That namespace ends with the merged
// container, and its processes name the objects by id, so each is made
// again in the kept container's namespace with the same id (the
// namespace's shm/sem/msg_next_id), key, owner, mode and content, while the
// merged processes are stopped; CRIU's dump and restore then leave them out
// (lxmig's merge patch, LXMIG_CRIU_SYSV_OUTSIDE). Private to the helper.
#pragma once

namespace lxmig::container {

enum class IpcKind { kShm, kSem, kMsg };

// Copies every object of the IPC namespace of pid `fromInit` into that of
// pid `toInit`, writing "shm|sem|msg ID" lines of what it made to
// `listPath`. Makes nothing when an id, or a key other than IPC_PRIVATE,
// is taken there (exit 6); undoes what it made on any other failure
// (exit 1); 5 when a namespace cannot be joined. Prints the count.
int copyIpc(const char* fromInit, const char* toInit, const char* listPath);

// Removes, in the IPC namespace of pid `init`, the objects `listPath`
// names (a merge rolled back); a missing list or object is fine.
int dropIpc(const char* init, const char* listPath);

}  // namespace lxmig::container
