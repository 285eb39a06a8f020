// A command run inside a container for `lxmig exec` (Node::startExec):
// lxc-attach with its stdin, output and, when asked, a terminal, as
// descriptors the caller pumps. All of them are non-blocking.
//
//   LXMIG_ASSIGN_OR_RETURN(node::ExecSession s, node.startExec(req));
//   poll s.output, s.errors and s.child.pidfd(); write s.input; s.resize(...)
#pragma once

#include <cstdint>

#include "lxmig/base/fd.h"
#include "lxmig/base/process.h"
#include "lxmig/base/status.h"

namespace lxmig::node {

struct ExecSession {
  Child child;      // lxc-attach; killed and reaped with the session
  UniqueFd input;   // its stdin (interactive), else none; with a terminal, the terminal
  UniqueFd output;  // its stdout, or the terminal: all its output
  UniqueFd errors;  // its stderr; none with a terminal
  bool tty = false;

  // The terminal's new size (the command hears SIGWINCH); nothing without one.
  Status resize(uint32_t rows, uint32_t cols) const;
  // lxc-attach sets the terminal up with onlcr, after it starts: with the
  // terminal inside the container doing the same, every newline would come
  // out as "\r\r\n". Undoes it (called as output is read); whether it did.
  bool keepTerminalRaw() const;
  // Kills the command and the processes of its group inside the
  // container, then lxc-attach: killing lxc-attach alone would leave the
  // command running.
  void kill();
};

// Bounds of what a caller may ask (checked by startExec and the caller).
inline constexpr size_t kMaxExecArgs = 1024;
inline constexpr size_t kMaxExecArgBytes = 128 << 10;  // all arguments together
inline constexpr uint32_t kMaxExecTimeoutMs = 24 * 3600 * 1000;
inline constexpr uint32_t kMaxTerminalSide = 4096;  // rows or columns

}  // namespace lxmig::node
