#include "lxmig/container/devices.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "lxmig/base/files.h"
#include "lxmig/container/lxc_host.h"

namespace lxmig::container::devices {
namespace {

void merge(std::vector<Device>& into, Device d) {
  for (auto& x : into)
    if (x.type == d.type && x.major == d.major && x.minor == d.minor &&
        (x.path == d.path || x.path.empty() || d.path.empty())) {
      if (x.path.empty()) x.path = d.path;
      if (x.hostPath.empty()) x.hostPath = d.hostPath;
      for (auto& s : d.seen)
        if (std::find(x.seen.begin(), x.seen.end(), s) == x.seen.end()) x.seen.push_back(std::move(s));
      return;
    }
  into.push_back(std::move(d));
}

void scanDir(const std::string& dir, int depth, std::vector<Device>& out) {
  for (const auto& n : listDir(dir).value_or({})) {
    std::string p = dir + "/" + n;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth > 0 && n != "pts" && n != "shm" && n != "mqueue" && n != "hugepages") scanDir(p, depth - 1, out);
      continue;
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
    Device dev{S_ISBLK(st.st_mode) ? 'b' : 'c', ::major(st.st_rdev), ::minor(st.st_rdev), p, "", "", {}};
    if (!standardDevice(dev)) out.push_back(std::move(dev));
  }
}

}  // namespace

std::string Device::id() const {
  return std::string(1, type) + " " + std::to_string(major) + ":" + std::to_string(minor);
}

Result<Device> statDevice(const std::string& path) {
  struct stat st {};
  if (path.empty() || path[0] != '/') return invalidArgument("device path must be absolute: `" + path + "`");
  if (::stat(path.c_str(), &st) != 0) return Status::fromErrno("device", path);
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) return invalidArgument("`" + path + "` is not a device node");
  return Device{S_ISBLK(st.st_mode) ? 'b' : 'c', ::major(st.st_rdev), ::minor(st.st_rdev), path, "", "", {}};
}

bool standardDevice(const Device& d) {
  if (d.type != 'c') return false;
  if (d.major == 1) return d.minor == 3 || d.minor == 5 || d.minor == 7 || d.minor == 8 || d.minor == 9;
  if (d.major == 5) return d.minor <= 2;    // tty, console, ptmx
  return d.major >= 136 && d.major <= 143;  // pts
}

Result<std::vector<Device>> parseOffer(const std::string& spec) {
  std::vector<Device> out;
  std::string s = spec;
  std::replace(s.begin(), s.end(), ',', ' ');
  bool any = false;
  for (const auto& w : split(s, ' ', false)) {
    std::string item(trim(w));
    if (item.empty()) continue;
    any = true;
    std::string cls;
    if (auto eq = item.find('='); eq != std::string::npos) {
      cls = item.substr(0, eq);
      item = item.substr(eq + 1);
      if (cls.empty()) return invalidArgument("device offer `" + w + "`: empty class");
    }
    auto d = statDevice(item);
    if (!d.ok()) return invalidArgument("device offer `" + w + "`: " + d.status().message());
    d->cls = cls;
    out.push_back(std::move(*d));
  }
  if (!any) scanDir("/dev", 2, out);
  return out;
}

Result<DeviceBind> parseDeviceFlag(const std::string& flag) {
  DeviceBind b;
  auto colon = flag.find(':');
  b.hostPath = flag.substr(0, colon);
  b.containerPath = colon == std::string::npos ? b.hostPath : flag.substr(colon + 1);
  if (b.hostPath.empty() || b.hostPath[0] != '/' || b.containerPath.empty() || b.containerPath[0] != '/' ||
      b.containerPath.find("..") != std::string::npos || b.containerPath.find(' ') != std::string::npos ||
      b.hostPath.find(' ') != std::string::npos)
    return invalidArgument("--device wants /dev/X[:/dev/Y] (absolute paths), got `" + flag + "`");
  auto d = statDevice(b.hostPath);
  if (!d.ok()) return invalidArgument("--device " + b.hostPath + ": " + d.status().message());
  return b;
}

std::vector<Device> requirements(const std::vector<DeviceBind>& binds, const std::string& lxcConfig,
                                 const std::vector<pid_t>& pids) {
  std::vector<Device> out;
  for (const auto& b : binds) {
    auto d = statDevice(b.hostPath);
    if (!d.ok()) continue;
    d->path = b.containerPath;
    d->hostPath = b.hostPath;
    d->seen.push_back("configured: --device " + b.hostPath +
                      (b.containerPath == b.hostPath ? "" : ":" + b.containerPath));
    merge(out, std::move(*d));
  }
  // Config lines lxmig wrote for a --device are that device's, listed above.
  auto fromBind = [&](const Device& d) {
    for (const auto& x : out)
      if (x.type == d.type && x.major == d.major && x.minor == d.minor && !x.hostPath.empty()) return true;
    return false;
  };
  for (const auto& raw : split(lxcConfig, '\n')) {
    std::string l(trim(raw));
    auto eq = l.find('=');
    if (eq == std::string::npos) continue;
    std::string key(trim(l.substr(0, eq))), val(trim(l.substr(eq + 1)));
    if (key == "lxc.cgroup.devices.allow" || key == "lxc.cgroup2.devices.allow") {
      // "c 10:200 rwm"; wildcards are not a device.
      char type = 0;
      unsigned maj = 0, min = 0;
      char rest[16] = {};
      if (std::sscanf(val.c_str(), "%c %u:%u %15s", &type, &maj, &min, rest) >= 3 && (type == 'c' || type == 'b')) {
        Device d{type, maj, min, "", "", "", {"configured: " + key + " = " + val}};
        if (!standardDevice(d) && !fromBind(d)) merge(out, std::move(d));
      }
    } else if (key == "lxc.mount.entry") {
      auto f = split(val, ' ');
      if (f.size() < 2 || f[0].rfind("/dev/", 0) != 0) continue;
      auto d = statDevice(f[0]);
      if (!d.ok() || standardDevice(*d) || fromBind(*d)) continue;
      d->hostPath = f[0];
      d->path = "/" + f[1];
      d->seen.push_back("configured: bind mount of " + f[0]);
      merge(out, std::move(*d));
    }
  }
  for (pid_t pid : pids) {
    const std::string base = "/proc/" + std::to_string(pid);
    for (const auto& n : listDir(base + "/fd").value_or({})) {
      std::string fd = base + "/fd/" + n;
      struct stat st {};
      if (::stat(fd.c_str(), &st) != 0 || (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))) continue;
      Device dev{S_ISBLK(st.st_mode) ? 'b' : 'c', ::major(st.st_rdev), ::minor(st.st_rdev), "", "", "", {}};
      if (standardDevice(dev)) continue;
      auto target = readLink(fd);
      dev.path = target.ok() ? *target : "";
      dev.seen.push_back("open by " + processLabel(pid) + " (fd " + n + ")");
      merge(out, std::move(dev));
    }
    auto maps = readFile(base + "/maps");
    if (!maps.ok()) continue;
    for (const auto& line : split(*maps, '\n')) {
      auto slash = line.find(" /dev/");
      if (slash == std::string::npos || line.find("/dev/shm/") != std::string::npos ||
          line.find("/dev/zero") != std::string::npos)
        continue;
      std::string range = line.substr(0, line.find(' '));
      struct stat st {};
      if (::stat((base + "/map_files/" + range).c_str(), &st) != 0) continue;
      if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
      Device dev{S_ISBLK(st.st_mode) ? 'b' : 'c',
                 ::major(st.st_rdev),
                 ::minor(st.st_rdev),
                 std::string(trim(line.substr(slash))),
                 "",
                 "",
                 {}};
      if (standardDevice(dev)) continue;
      dev.seen.push_back("mapped by " + processLabel(pid));
      merge(out, std::move(dev));
    }
  }
  return out;
}

Placement place(const std::vector<Device>& need, const std::vector<Device>& sourceOffer,
                const std::vector<Device>& offer, const std::string& node, const std::string& container) {
  Placement p;
  for (const auto& n : need) {
    const std::string where = n.path.empty() ? "(cgroup rule only)" : n.path;
    std::string seen;
    for (const auto& s : n.seen) seen += (seen.empty() ? "" : "; ") + s;
    const Device* same = nullptr;
    for (const auto& o : offer)
      if (o.type == n.type && o.major == n.major && o.minor == n.minor) same = &o;
    if (same) {
      if (!n.path.empty()) {
        p.hostPath[n.path] = same->path;
        p.target[n.path] = *same;
      }
      continue;
    }
    // The class the source offered it under, and the target's device of
    // that class.
    std::string cls;
    for (const auto& s : sourceOffer)
      if (s.type == n.type && s.major == n.major && s.minor == n.minor && !s.cls.empty()) cls = s.cls;
    const Device* mapped = nullptr;
    if (!cls.empty())
      for (const auto& o : offer)
        if (o.cls == cls) mapped = &o;
    if (mapped && mapped->type != n.type) {
      p.missing.push_back(node + " maps class " + cls + " to " + mapped->id() + " " + mapped->path +
                          ", a device of another type than " + n.id() + " " + where + " needed by container " +
                          container);
      continue;
    }
    if (mapped) {
      if (!n.path.empty()) {
        p.hostPath[n.path] = mapped->path;
        p.target[n.path] = *mapped;
      }
      continue;
    }
    p.missing.push_back(node + " lacks " + n.id() + " " + where + " needed by container " + container + " (" + seen +
                        ")");
  }
  return p;
}

v1::Device toProto(const Device& d) {
  v1::Device p;
  p.set_type(std::string(1, d.type));
  p.set_dev_major(d.major);
  p.set_dev_minor(d.minor);
  p.set_path(d.path);
  p.set_host_path(d.hostPath);
  p.set_cls(d.cls);
  for (const auto& s : d.seen) p.add_seen(s);
  return p;
}

Device fromProto(const v1::Device& p) {
  Device d;
  d.type = p.type().empty() ? 'c' : p.type()[0];
  d.major = p.dev_major();
  d.minor = p.dev_minor();
  d.path = p.path();
  d.hostPath = p.host_path();
  d.cls = p.cls();
  d.seen.assign(p.seen().begin(), p.seen().end());
  return d;
}

}  // namespace lxmig::container::devices
