#include "cgroup_tree.h"

#include "lxmig/base/files.h"

namespace lxmig::container {
namespace {

bool lists(const std::string& words, const std::string& controller) {
  for (const auto& w : split(std::string(trim(words)), ' '))
    if (w == controller) return true;
  return false;
}

}  // namespace

Status enableControllerDown(const std::string& root, const std::string& rel, const std::string& controller) {
  std::string dir = root;
  const auto names = split(rel, '/');
  for (size_t i = 0; i <= names.size(); ++i) {
    if (i > 0) {
      dir += "/" + names[i - 1];
      LXMIG_RETURN_IF_ERROR(makeDirs(dir, 0755).withContext("cgroup"));
    }
    const std::string control = dir + "/cgroup.subtree_control";
    auto now = readFile(control);
    if (!now.ok()) return now.status().withContext("the controllers of cgroup " + dir);
    if (lists(*now, controller)) continue;
    LXMIG_RETURN_IF_ERROR(
        writeFile(control, "+" + controller).withContext("turning on " + controller + " below cgroup " + dir));
  }
  return okStatus();
}

}  // namespace lxmig::container
