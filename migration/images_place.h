// Where a migration's CRIU images go on one node: the RAM tmpfs when it has
// room for them, else the node's directory on disk (images_disk_dir), which
// is said in the report and the audit. Both sides use it: the target for
// what arrives (pre-copy's page store, the dump), the source for the dump
// of a stop-and-copy.
#pragma once

#include <cstdint>
#include <string>

#include "lxmig/base/status.h"
#include "lxmig/migration/host.h"

namespace lxmig::migration {

struct ImagesPlace {
  std::string root;  // host.imagesRoot() or host.imagesDiskRoot()
  std::string why;   // on disk: a line saying where and why; "" in the tmpfs
};

// `need`: about the container's memory (0: anything fits); `beside`: bytes
// the writable area takes on the staging filesystem, which the disk must
// hold too when it is the same filesystem. `who` starts the messages
// ("target n2"). ResourceExhausted with every size when neither place fits.
Result<ImagesPlace> placeImages(const ContainerHost& host, const std::string& who, uint64_t need, uint64_t beside);

}  // namespace lxmig::migration
