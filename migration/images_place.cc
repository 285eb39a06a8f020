#include "images_place.h"

#include "lxmig/base/files.h"

namespace lxmig::migration {

Result<ImagesPlace> placeImages(const ContainerHost& host, const std::string& who, uint64_t need, uint64_t beside) {
  const uint64_t ramFree = host.freeBytes(host.imagesRoot());
  if (need == 0 || ramFree >= need) return ImagesPlace{host.imagesRoot(), ""};
  const std::string disk = host.imagesDiskRoot();
  std::string refusal = who + " has " + humanBytes(ramFree) + " free for images in " + host.imagesRoot();
  if (!disk.empty()) {
    const uint64_t diskFree = host.freeBytes(disk);
    const uint64_t shared = host.sameFilesystem(disk, host.stagingRoot()) ? beside : 0;
    if (diskFree >= need && diskFree - need >= shared)
      return ImagesPlace{disk, "images staged on disk in " + disk + ": the images tmpfs has " + humanBytes(ramFree) +
                                   " free, the container needs about " + humanBytes(need)};
    refusal += " and " + humanBytes(diskFree) + " in " + disk + (shared ? " (shared with the writable area)" : "");
  }
  return resourceExhausted(refusal + ", the container needs about " + humanBytes(need));
}

}  // namespace lxmig::migration
