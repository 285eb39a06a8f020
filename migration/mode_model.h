// What `--mode auto` picks (DESIGN.md, "A migration", step 1): both modes'
// frozen windows predicted from what the node measured in its own recent
// migrations, and the cheaper one. Pure, so it is unit-tested on its own.
//
//   ModeModel m = ModeModel::fit(samples);   // this node's committed moves
//   ModeModel::Choice c = m.choose(memoryBytes, dirtyRateBps);
//   // c.preCopy, c.stopAndCopyMs, c.preCopyMs, c.why
//
// Each mode's frozen window is a line in the container's memory: a fixed
// cost (freezer, CRIU's dump of the process tree, liblxc and CRIU's
// restore, cut-over) plus a cost per MiB. Stop-and-copy's slope is steep
// (every page is dumped, sent and restored while frozen); pre-copy's is
// shallow (CRIU still walks every page in the dump, the target lays the
// page store out) plus the pages written since the last round, which pass
// in the window. With little memory the two fixed costs decide.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stop_rule.h"

namespace lxmig::migration {

// One committed migration from this node, as the audit recorded it.
struct FrozenSample {
  bool preCopy = false;
  uint64_t memoryBytes = 0;  // pre-copy: what its rounds sent; stop-and-copy: what its frozen window sent
  int64_t downtimeMs = 0;
};

class ModeModel {
 public:
  // downtime = fixedMs + msPerMiB * memory in MiB
  struct Line {
    double fixedMs = 0;
    double msPerMiB = 0;
    int samples = 0;  // 0: the defaults measured on the reference machine
  };
  struct Choice {
    bool preCopy = true;
    int64_t stopAndCopyMs = 0;
    int64_t preCopyMs = 0;
    std::string why;  // one line, with both predictions and where the model comes from
  };

  // The pages written during the last round (about a second of the dirty
  // rate) are what pre-copy carries through its frozen window.
  static constexpr double kLastRoundSeconds = 1.0;
  // At most this many samples per mode, the newest.
  static constexpr size_t kMaxSamples = 30;
  // Stop-and-copy is taken only when predicted this much shorter (at most
  // 0.9 of pre-copy's window): where the two are close (small containers),
  // noise in the fixed costs must not flip the mode from one move to the
  // next, and pre-copy keeps the container running while its memory moves.
  static constexpr double kStopAndCopyAt = 0.9;

  static ModeModel fit(const std::vector<FrozenSample>& newestFirst);
  Choice choose(uint64_t memoryBytes, double dirtyRateBps) const;

  const Line& stopAndCopy() const { return sc_; }
  const Line& preCopy() const { return pc_; }

 private:
  Line sc_, pc_;
};

}  // namespace lxmig::migration
