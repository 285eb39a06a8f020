#include "lxmig/container/dev_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"

namespace lxmig::container {
namespace {

// What /proc/PID/mountinfo shows of lxc_host.cc's entry
// "tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0".
constexpr TmpfsLine kStandard = {"/dev/shm", "tmpfs", "rw,nosuid,nodev,relatime", "rw"};

}  // namespace

std::string devShmMountProblem(std::string_view mountinfo) { return tmpfsMountProblem(mountinfo, kStandard); }

Result<UniqueFd> openDevShmDir(pid_t init, std::string* shown) {
  if (init == 0) {
    *shown = "/dev/shm";
    UniqueFd dir(::open("/dev/shm", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return Status::fromErrno("open", *shown);
    return dir;
  }
  return openDirBeneathRootOf(init, "dev/shm", shown);
}

Result<std::string> devShmProblem(pid_t init, DevShmHolds holds, DevShmFiles* files) {
  if (init <= 0) return invalidArgument("no init process");
  const std::string proc = "/proc/" + std::to_string(init);
  LXMIG_ASSIGN_OR_RETURN(std::string mountinfo, readFileHead(proc + "/mountinfo", 4 << 20));
  if (std::string why = devShmMountProblem(mountinfo); !why.empty()) return why;
  std::string shown;
  auto dir = openDevShmDir(init, &shown);
  if (!dir.ok()) return "/dev/shm cannot be read: " + dir.status().message();
  LXMIG_ASSIGN_OR_RETURN(auto entries, listDirAt(dir->get(), shown));
  *files = {};
  if (holds == DevShmHolds::kNothing) {
    if (!entries.empty()) return "/dev/shm holds " + std::to_string(entries.size()) + " file(s)";
    return std::string();
  }
  if (entries.size() > kDevShmMaxFiles)
    return "/dev/shm holds " + std::to_string(entries.size()) + " entries (more than " +
           std::to_string(kDevShmMaxFiles) + ")";
  for (const auto& e : entries) {
    struct stat st {};
    if (::fstatat(dir->get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // gone since the listing (the container runs at PREPARE)
      return "/dev/shm cannot be read: " + Status::fromErrno("stat", shown + "/" + e.name).message();
    }
    const std::string name = quote(e.name);
    if (!S_ISREG(st.st_mode)) return "/dev/shm holds " + name + ", which is not a regular file";
    if (st.st_nlink != 1) return "/dev/shm holds " + name + ", a file of " + std::to_string(st.st_nlink) + " names";
    ++files->files;
    files->bytes += static_cast<uint64_t>(st.st_size);
  }
  return std::string();
}

Result<std::unique_ptr<PreparedTmpfs>> prepareDevShm(const std::string& dir) {
  return PreparedTmpfs::mount(dir, kStandard, MS_NOSUID | MS_NODEV, "/dev/shm");
}

}  // namespace lxmig::container
