// Each backend's probe, apart from the backend: the backend table
// (dirty_tracker.cc) pairs them with the create() functions, trackerProbes()
// lists them alone, so a caller that only probes links no tracker and no
// system call injection.
#pragma once

#include "lxmig/tracking/dirty_tracker.h"

namespace lxmig::tracking {

extern const TrackerProbe kUffdWpProbe;
extern const TrackerProbe kSoftDirtyProbe;
extern const TrackerProbe kNoneProbe;

}  // namespace lxmig::tracking
