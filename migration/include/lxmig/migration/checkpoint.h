// Standalone checkpoints (lxmig checkpoint / restore): a migration whose
// target, or source, is a file the CLI holds.
//
// Checkpoint: the Source runs as for a stop-and-copy migration, towards a
// Peer (checkpointPeers) that turns what a target would receive into
// records for the file: PREPARE, the bulk streams, and RESTORE, which is
// "every record is written, the file is saved": the commit point. Before
// it the container thaws as after any failed migration; after it the
// container goes (or thaws, SourceContext::keepRunning).
//
// The file itself is the CLI's (cli/checkpoint_file.h).
//
// Restore: the file's records go through this node's Target as from a peer
// named kCheckpointPeer, with all its checks (the spec, devices, budget,
// paths beneath the staging root, the XXH3 of every chunk).
//
//   RecordSink& sink = ...;   // the RPC stream to the CLI
//   auto peers = checkpointPeers(sink);
//   SourceContext sc{host, *peers, audit, reservations};
//   sc.keepRunning = leaveRunning;
//   Source src(sc, req, progress, cancelled);
//   ...
//   auto r = importCheckpoint(target, host, peers, "web2", next);
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "lxmig/migration/host.h"
#include "lxmig/migration/peers.h"
#include "lxmig/migration/target.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// The name a checkpoint's file goes by as a migration's peer (audit rows:
// target of a checkpoint, source of a restore).
inline constexpr const char* kCheckpointPeer = "checkpoint";

// Where a checkpoint's records go (the CLI, over the Checkpoint RPC).
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // False once the caller is gone.
  virtual bool write(const v1::CheckpointRecord& r) = 0;
  // Every record was written: waits at most timeoutMs for the caller's
  // word that its file holds them durably. Aborted when it does not come.
  virtual Status awaitSaved(int timeoutMs) = 0;
  // Breaks the stream at once (a write blocked on a caller that reads
  // nothing returns); from any thread.
  virtual void breakOff() = 0;
};

// The peers of a checkpoint's Source: whatever it connects to is the file.
std::unique_ptr<Peers> checkpointPeers(RecordSink& sink);

// The next record of the file (false at its end).
using RecordSource = std::function<Result<bool>(v1::CheckpointRecord&)>;

struct Imported {
  std::string migrationId;   // of the restore, in this node's audit
  std::string container;     // its name here
  std::string checkpointId;  // of the checkpoint (the file's)
  std::string takenOn;       // the node it was taken on
};

// Restores the records `next` gives on this node, as `name` ("" = the
// name in the file). Refused before anything is written when a container
// of that name or address runs on any node of `peers` or here. Any failure
// leaves nothing behind (the Target aborts).
Result<Imported> importCheckpoint(Target& target, ContainerHost& host, Peers& peers, const std::string& name,
                                  const RecordSource& next);

}  // namespace lxmig::migration
