// none: watches nothing, so every page is dirty until the freeze: the
// migration is stop-and-copy.
#include "lxmig/tracking/dirty_tracker.h"

namespace lxmig::tracking {
namespace {

class NoneTracker final : public DirtyTracker {
 public:
  const char* name() const override { return "none"; }
  Result<PageSet> arm() override { return PageSet{}; }
  Result<TrackerScan> collect(bool) override { return TrackerScan{}; }
  void disarm() override {}
};

}  // namespace

Result<std::unique_ptr<DirtyTracker>> createNoneTracker(pid_t) {
  return std::unique_ptr<DirtyTracker>(new NoneTracker());
}

}  // namespace lxmig::tracking
