// lxmig merge: the processes of containers of one node continued inside
// one of them, with the same pids, the same memory, and the FIFOs and files
// they share through binds; from then on they move as one, answering on
// every address the merged containers had.
//
//   lxmig merge A B C --name A   B's and C's processes join A; B and C go
//
// Per container merged into the kept one (each an audited row, mode
// `merge`):
//   1. CHECK   both were started with lxmig-init as pid 1; each process
//              tree under the merged container's init is checked as adopt
//              checks a host tree (grouping/adoption.h, AdoptionRules::from),
//              and its pids must be free in the kept container (every
//              container's workload starts in a pid range of its own).
//              Refused, one line per reason, before anything is touched.
//   2. DUMP    its addresses blocked, CRIU dumps each tree from inside its
//              container (no namespace in the images), leaving it stopped.
//   3. RESTORE the binds and devices the kept container lacks are mounted
//              into it, its eth0 gets the merged container's addresses, and
//              CRIU restores each tree inside it (LxcHost::restoreInto),
//              left stopped.
//   4. COMMIT  the stopped originals are killed, the copies continued; the
//              merged container is removed, its addresses announced from
//              the kept one and unblocked, its firewall rules, binds,
//              devices, environment and addresses added to the kept spec.
// A failure in 2-3 kills the copies, takes back what the kept container
// was given and continues the originals: both containers run as before.
#pragma once

#include "lxmig/base/status.h"
#include "lxmig/migration/progress.h"
#include "lxmig/node/node.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// InvalidArgument/NotFound for a bad request (nothing recorded); otherwise
// the reply: refusals (audited as refused), a dry run's plan, or a report
// per container merged (committed, or aborted with both running as before).
// `progress` (may be empty) hears each phase as it begins, and the bytes
// of the images while CRIU writes them.
Result<v1::MergeReply> merge(node::Node& node, const v1::MergeRequest& req, const ProgressFn& progress = {});

// At the agent's start: a merge the agent stopped under is settled. While
// the merged container's stopped originals exist they are the ones (the
// copies in the kept container are killed, the originals continue); once
// they are gone the copies are (continued). Returns how many were settled.
int settleMerges(node::Node& node);

}  // namespace lxmig::migration
