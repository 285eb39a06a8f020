// lxmig merge: the processes of containers of one node continued inside
// one of them, with the same pids, the same memory, and the FIFOs and files
// they share through binds both have; from then on they move as one.
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
//   2. DUMP    CRIU dumps each tree from inside its container (no namespace
//              in the images), leaving it stopped.
//   3. RESTORE CRIU restores each tree inside the kept container
//              (LxcHost::restoreInto), left stopped.
//   4. COMMIT  the stopped originals are killed, the copies continued; the
//              merged container is removed, its address released, its
//              firewall rules and environment added to the kept one's.
// A failure in 2-3 kills the copies and continues the originals: both
// containers run as before.
#pragma once

#include "lxmig/base/status.h"
#include "lxmig/node/node.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// InvalidArgument/NotFound for a bad request (nothing recorded); otherwise
// the reply: refusals (audited as refused), a dry run's plan, or a report
// per container merged (committed, or aborted with both running as before).
Result<v1::MergeReply> merge(node::Node& node, const v1::MergeRequest& req);

// At the agent's start: a merge the agent stopped under is settled. While
// the merged container's stopped originals exist they are the ones (the
// copies in the kept container are killed, the originals continue); once
// they are gone the copies are (continued). Returns how many were settled.
int settleMerges(node::Node& node);

}  // namespace lxmig::migration
