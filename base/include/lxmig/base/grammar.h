// The grammar every value from outside passes before use: flags, peer
// messages, stored specs, file names in images and transfers. Each check
// returns InvalidArgument with one line naming the value and the rule it
// broke ("bad container name `a/b`: letters, digits, '-' and '_', at most
// 48, starting with a letter or digit"), or OK.
//
//   LXMIG_RETURN_IF_ERROR(checkContainerName(req.name()));
//   LXMIG_ASSIGN_OR_RETURN(uint64_t n, parseUint(text, "page count", 0, kMaxPages));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "lxmig/base/status.h"

namespace lxmig {

// Container names are cluster-wide (`lxmig rm NAME` finds it on any node)
// and become directory names, cgroup names and LXC config values.
inline constexpr size_t kMaxContainerName = 48;
Status checkContainerName(std::string_view name);
// Node names appear in paths, certificates and messages.
inline constexpr size_t kMaxNodeName = 63;
Status checkNodeName(std::string_view name);
// A migration id: exactly 16 lower-case hex digits (newMigrationId()).
Status checkMigrationId(std::string_view id);
// A relative path inside a tree: components separated by single '/', none
// empty, "." or "..", no NUL; at most kMaxPathDepth components of at most
// 255 bytes, kMaxPath bytes in all. "." alone names the tree's root.
inline constexpr size_t kMaxPath = 4096;
inline constexpr size_t kMaxPathDepth = 256;
Status checkRelativePath(std::string_view path);
// An absolute path without "..", empty components or NUL (a bind source,
// a device node).
Status checkAbsolutePath(std::string_view path);
// A network interface's name as the kernel takes it (dev_valid_name): 1 to
// 15 bytes, none '/', ':' or white space, not "." or "..". `what` names the
// value in the error.
Status checkInterfaceName(std::string_view name, std::string_view what);
// Text that may reach a configuration file or a log line as one value: no
// control characters (newline, NUL, escape ...), at most `max` bytes.
// `what` names the value in the error.
Status checkPlainText(std::string_view text, std::string_view what, size_t max = 4096);
// A value for an error message: in backquotes, at most `max` bytes, control
// characters shown as \xNN, so the message stays one line.
std::string quote(std::string_view value, size_t max = 80);
// Text from outside (a process name, a peer's reason) for a terminal: its
// control characters (newline and escape among them, and the C1 ones in
// UTF-8) shown as \xNN, so it can neither move the cursor nor fake a line.
std::string printable(std::string_view text);
// A decimal number in [min, max], nothing else (no sign, no spaces, no
// suffix, no leading zero); `what` names it in the error.
Result<uint64_t> parseUint(std::string_view text, std::string_view what, uint64_t min, uint64_t max);
// Splits "host:port" or "[v6]:port" (port 0..65535, the host not empty and
// without ':' unless bracketed); InvalidArgument when malformed.
Result<std::pair<std::string, uint16_t>> splitHostPort(const std::string& address);

}  // namespace lxmig
