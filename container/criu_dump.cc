#include "criu_dump.h"

#include <string_view>

#include "lxmig/base/files.h"

namespace lxmig::container {
namespace {

constexpr std::string_view kMountEntry = "lxc.mount.entry";

bool controllerChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '=' || c == ',';
}

bool within(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}

// `--cgroup-root CONTROLLERS:PAYLOAD` for each hierarchy of /proc/INIT/cgroup
// ("ID:CONTROLLERS:PATH" lines) whose PATH is the payload or beneath it;
// cgroup2's line has no controllers, and CRIU names that hierarchy "".
Status addCgroupRoots(const CriuDumpPlan& plan, std::vector<std::string>& args) {
  bool any = false;
  for (const auto& line : split(plan.initCgroups, '\n')) {
    if (line.empty()) continue;
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos)
      return invalidArgument("unreadable line `" + line + "` in /proc/" + std::to_string(plan.init) + "/cgroup");
    const std::string controllers = line.substr(a + 1, b - a - 1);
    for (char c : controllers)
      if (!controllerChar(c))
        return invalidArgument("unexpected cgroup controllers `" + controllers + "` of pid " +
                               std::to_string(plan.init));
    if (!within(std::string_view(line).substr(b + 1), plan.payload)) continue;
    args.push_back("--cgroup-root");
    args.push_back(controllers + ":" + plan.payload);
    any = true;
  }
  if (!any)
    return invalidArgument("pid " + std::to_string(plan.init) + " is in no cgroup beneath " + plan.payload +
                           " (not the container's init?)");
  return okStatus();
}

// `--ext-mount-map /PATH:PATH` for each bind among the config's mount
// entries ("lxc.mount.entry = SOURCE PATH TYPE OPTIONS 0 0", PATH relative
// to the rootfs): CRIU names each such mount by its path as liblxc's
// restore maps it back (`--ext-mount-map PATH:SOURCE`).
Status addBindMaps(const CriuDumpPlan& plan, std::vector<std::string>& args) {
  for (const auto& line : split(plan.config, '\n')) {
    std::string_view l = trim(line);
    if (l.substr(0, kMountEntry.size()) != kMountEntry) continue;
    l = trim(l.substr(kMountEntry.size()));
    if (l.empty() || l[0] != '=') continue;
    const std::vector<std::string> fields = split(trim(l.substr(1)), ' ');
    if (fields.size() < 4) return invalidArgument("unreadable mount entry `" + std::string(l.substr(1)) + "`");
    bool bind = false;
    for (const auto& o : split(fields[3], ',')) bind |= o == "bind" || o == "rbind";
    if (!bind) continue;
    const std::string& path = fields[1];
    if (path.empty() || path[0] == '/' || path.find_first_of(":\\") != std::string::npos)
      return invalidArgument("mount entry `" + std::string(l.substr(1)) + "`: CRIU cannot name its path");
    args.push_back("--ext-mount-map");
    args.push_back("/" + path + ":" + path);
  }
  return okStatus();
}

}  // namespace

Result<std::vector<std::string>> criuDumpArgs(const CriuDumpPlan& plan) {
  if (plan.init <= 0) return invalidArgument("no init pid to dump");
  if (plan.payload.size() < 2 || plan.payload[0] != '/' || plan.payload.back() == '/' ||
      plan.payload.find_first_of(": \n") != std::string::npos)
    return invalidArgument("bad container cgroup `" + plan.payload + "`");
  std::vector<std::string> args = {"dump",
                                   "--tcp-established",
                                   "--file-locks",
                                   "--link-remap",
                                   "--manage-cgroups=full",
                                   "--ext-mount-map",
                                   "auto",
                                   "--enable-external-sharing",
                                   "--enable-external-masters",
                                   "--enable-fs",
                                   "hugetlbfs",
                                   "--enable-fs",
                                   "tracefs",
                                   "-D",
                                   plan.imagesDir,
                                   "-o",
                                   plan.imagesDir + "/dump.log"};
  LXMIG_RETURN_IF_ERROR(addCgroupRoots(plan, args));
  LXMIG_RETURN_IF_ERROR(addBindMaps(plan, args));
  args.insert(args.end(), {"-t", std::to_string(plan.init), "--skip-in-flight", "--freeze-cgroup",
                           std::string("/sys/fs/cgroup") + (plan.unified ? "" : "/freezer") + plan.payload,
                           "--force-irmap", "--leave-running"});
  return args;
}

}  // namespace lxmig::container
