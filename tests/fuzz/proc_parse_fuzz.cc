// The IPC grouping's /proc parsers (grouping/proc_parse.h) on any text:
// the whole input as one file (stat, cgroup, sysvipc/shm) and each of its
// lines (maps, net/tcp, fd links). What parses is rewritten in the
// kernel's own format and must parse back to the same fields; results are
// pieces of the input, within the documented bounds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proc_parse.h"

namespace {

using namespace lxmig::grouping::internal;

std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
  return b;
}

void checkStat(std::string_view text) {
  auto st = parseStat(text);
  if (!st) return;
  LXMIG_FUZZ_CHECK(st->comm.size() + 2 <= text.size());
  LXMIG_FUZZ_CHECK(text.find(st->comm) != std::string_view::npos);
  // pid (comm) state ppid pgrp session tty_nr tpgid flags ... starttime(22)
  const std::string line = std::to_string(st->pid) + " (" + st->comm + ") " + std::string(1, st->state) + " " +
                           std::to_string(st->ppid) + " " + std::to_string(st->pgrp) + " " +
                           std::to_string(st->session) + " 0 0 " + std::to_string(st->flags) +
                           " 0 0 0 0 0 0 0 0 0 0 0 0 " + std::to_string(st->startTime) + " 0 0\n";
  auto back = parseStat(line);
  LXMIG_FUZZ_CHECK(back.has_value());
  LXMIG_FUZZ_CHECK(back->pid == st->pid && back->comm == st->comm && back->state == st->state);
  LXMIG_FUZZ_CHECK(back->ppid == st->ppid && back->flags == st->flags && back->startTime == st->startTime);
  LXMIG_FUZZ_CHECK(back->pgrp == st->pgrp && back->session == st->session);
}

void checkMaps(std::string_view line) {
  auto m = parseMapsLine(line);
  if (!m) return;
  LXMIG_FUZZ_CHECK(m->perms.size() == 4);
  LXMIG_FUZZ_CHECK(m->shared() == (m->perms[3] == 's') && m->writable() == (m->perms[1] == 'w'));
  LXMIG_FUZZ_CHECK(m->path.empty() || (m->path.back() != ' ' && m->path.back() != '\n'));
  LXMIG_FUZZ_CHECK(m->path.empty() || m->path.front() != ' ');
  LXMIG_FUZZ_CHECK(line.find(m->path) != std::string_view::npos);
  const std::string again = hex(m->start) + "-" + hex(m->end) + " " + m->perms + " 00000000 " + hex(m->devMajor) + ":" +
                            hex(m->devMinor) + " " + std::to_string(m->inode) + "   " + m->path + "\n";
  auto back = parseMapsLine(again);
  LXMIG_FUZZ_CHECK(back.has_value());
  LXMIG_FUZZ_CHECK(back->start == m->start && back->end == m->end && back->perms == m->perms);
  LXMIG_FUZZ_CHECK(back->devMajor == m->devMajor && back->devMinor == m->devMinor && back->inode == m->inode);
  LXMIG_FUZZ_CHECK(back->path == m->path);
}

void checkCgroup(std::string_view text) {
  const std::string name = containerFromCgroup(text);
  if (name.empty()) return;
  LXMIG_FUZZ_CHECK(name.find_first_of("/\n") == std::string::npos);
  LXMIG_FUZZ_CHECK(text.find("payload." + name) != std::string_view::npos);
  // The same name from a cgroup v2 line of its own.
  LXMIG_FUZZ_CHECK(containerFromCgroup("0::/lxc.payload." + name + "\n") == name);
}

void checkBracket(std::string_view line) {
  for (std::string_view prefix : {"pipe", "socket", "net", "anon_inode"}) {
    auto v = bracketInode(line, prefix);
    if (!v) continue;
    LXMIG_FUZZ_CHECK(line.substr(0, prefix.size()) == prefix && line.back() == ']');
    LXMIG_FUZZ_CHECK(bracketInode(std::string(prefix) + ":[" + std::to_string(*v) + "]", prefix) == v);
  }
}

void checkNet(std::string_view line) {
  struct Table {
    std::string_view proto;
    bool v6;
  };
  for (const Table& t : {Table{"tcp", false}, Table{"tcp6", true}, Table{"udp", false}, Table{"udp6", true}}) {
    auto row = parseNetLine(line, t.proto, t.v6);
    if (!row) continue;
    LXMIG_FUZZ_CHECK(row->inode != 0);
    LXMIG_FUZZ_CHECK(row->summary.substr(0, t.proto.size() + 1) == std::string(t.proto) + " ");
    LXMIG_FUZZ_CHECK(row->summary.find('\n') == std::string::npos);
    LXMIG_FUZZ_CHECK(line.find(std::to_string(row->inode)) != std::string_view::npos);
  }
}

void checkSysvShm(std::string_view text) {
  for (const auto& [shmid, evidence] : parseSysvShm(text)) {
    LXMIG_FUZZ_CHECK(text.find(std::to_string(shmid)) != std::string_view::npos);
    LXMIG_FUZZ_CHECK(evidence.substr(0, 6) == "key 0x" && evidence.size() < 96);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  checkStat(text);
  checkCgroup(text);
  checkSysvShm(text);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    checkMaps(line);
    checkBracket(line);
    checkNet(line);
  }
  return 0;
}
