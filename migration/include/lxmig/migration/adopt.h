// lxmig adopt: a group of the host's processes continued inside a new
// container of the same node, with the same pids inside it, the same
// memory and the same pipes, sockets and shared memory between them; from
// then on it migrates like any container.
//
//   1. CHECK   scan the node (grouping/), take the group of the pid (or the
//              group id), and refuse what the container could not carry
//              (grouping/adoption.h), one line per reason. Nothing touched.
//   2. CREATE  a container whose init is lxmig-init, with its own address,
//              the operator's binds and published ports, and the devices the
//              group holds that the node offers.
//   3. DUMP    CRIU dumps the tree on the host and leaves it stopped.
//   4. RESTORE CRIU restores it inside the container (LxcHost::restoreInto).
//   5. COMMIT  the stopped host copy is killed.
// A failure in 2-4 removes the container; after 3 the host copy is also
// continued (SIGCONT): the processes run on the host as they were.
#pragma once

#include "lxmig/base/status.h"
#include "lxmig/migration/progress.h"
#include "lxmig/node/node.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// InvalidArgument/NotFound for a bad request (nothing recorded); otherwise
// the reply: refusals (audited as refused), a dry run's plan, or the
// report of the attempt (committed, or aborted with the processes left on
// the host).
// `progress` (may be empty) hears each phase as it begins, and the bytes
// of the images while CRIU writes them.
Result<v1::AdoptReply> adopt(node::Node& node, const v1::AdoptRequest& req, const ProgressFn& progress = {});

// At the agent's start: an adoption the agent stopped under is settled.
// While the host tasks it stopped still exist, the host copy is the one
// (the container is removed, the tasks continue); once they are gone the
// container's copy is (committed). Returns how many were settled.
int settleAdoptions(node::Node& node);

}  // namespace lxmig::migration
