// Benchmark (issue 3): one full IPC scan of a node holding 10,000 extra
// processes: 5,000 pairs (half joined by pipes, half by Unix socketpairs) and
// some shared-memory groups. Checks the exact partition, then measures side
// by side in the same run:
//   lxmig     `lxmig groups --all --json` (wall time, peak RSS from wait4)
//   baseline  `ss -xp` and `lsof -n` over the same processes
// and the in-process scan alone. Prints a table; --json for a file.
// Each measured command runs --repeat times (default 5), interleaved; the
// medians are reported.
// Usage (as root): grouping_bench [--pairs 5000] [--shm-groups 50] [--repeat 5] [--lxmig PATH] [--json]
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/grouping/ipc_graph.h"

using namespace lxmig;

namespace {

std::vector<pid_t> g_children;

// A child that keeps `fd` (as fd 3, or none when -1) and nothing else.
pid_t spawnHolding(int fd) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (fd >= 0 && fd != 3) ::dup2(fd, 3);
  ::syscall(SYS_close_range, fd >= 0 ? 4 : 3, ~0u, 0);
  int devnull = ::open("/dev/null", O_RDWR);
  for (int i = 0; i < 3; ++i) ::dup2(devnull, i);
  if (devnull > 2) ::close(devnull);
  for (;;) ::pause();
}

void killAll() {
  for (pid_t p : g_children) ::kill(p, SIGKILL);
  for (pid_t p : g_children) ::waitpid(p, nullptr, 0);
  g_children.clear();
}

struct Run {
  double wallMs = 0;
  long maxRssKiB = 0;
  int exitCode = -1;
};

// Runs a command with stdout to /dev/null; wall time and peak RSS.
Run measure(const std::vector<std::string>& argv) {
  Run r;
  int64_t t0 = monotonicNs();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  r.wallMs = (monotonicNs() - t0) / 1e6;
  r.maxRssKiB = ru.ru_maxrss;
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Run median(std::vector<Run> runs) {
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.wallMs < b.wallMs; });
  return runs[runs.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int pairs = 5000, shmGroups = 50, shmSize = 4, repeat = 5;
  bool json = false;
  std::string lxmigBin = "lxmig";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--pairs" && i + 1 < argc) pairs = std::atoi(argv[++i]);
    else if (a == "--shm-groups" && i + 1 < argc) shmGroups = std::atoi(argv[++i]);
    else if (a == "--lxmig" && i + 1 < argc) lxmigBin = argv[++i];
    else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "grouping_bench: unknown argument `%s`\n", a.c_str());
      return 2;
    }
  }
  std::vector<std::set<pid_t>> expected;
  for (int i = 0; i < pairs; ++i) {
    int fds[2];
    bool pipeKind = i % 2 == 0;
    if ((pipeKind ? ::pipe(fds) : ::socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) != 0) {
      std::perror("grouping_bench: pipe/socketpair");
      killAll();
      return 1;
    }
    pid_t a = spawnHolding(fds[0]);
    pid_t b = spawnHolding(fds[1]);
    ::close(fds[0]);
    ::close(fds[1]);
    if (a < 0 || b < 0) {
      std::perror("grouping_bench: fork");
      killAll();
      return 1;
    }
    g_children.push_back(a);
    g_children.push_back(b);
    expected.push_back({a, b});
  }
  for (int i = 0; i < shmGroups; ++i) {
    void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    std::set<pid_t> group;
    for (int k = 0; k < shmSize; ++k) {
      pid_t p = spawnHolding(-1);
      g_children.push_back(p);
      group.insert(p);
    }
    ::munmap(m, 4096);
    expected.push_back(group);
  }
  std::fprintf(stderr, "grouping_bench: %zu processes in %zu groups spawned\n", g_children.size(), expected.size());

  // In-process scan and the exact partition.
  int64_t t0 = monotonicNs();
  grouping::Scan scan = grouping::scanNode({});
  double scanMs = (monotonicNs() - t0) / 1e6;
  size_t wrong = 0;
  for (const auto& want : expected) {
    auto g = grouping::groupOf(scan, *want.begin());
    if (!g.ok() || std::set<pid_t>(g->members.begin(), g->members.end()) != want) ++wrong;
  }

  // Medians of `repeat` runs each: this VM is noisy. Interleaved so that a
  // slow patch of the host hits all three alike.
  std::vector<Run> lxs, sss, lsofs;
  for (int i = 0; i < repeat; ++i) {
    lxs.push_back(measure({lxmigBin, "--json", "groups", "--all"}));
    sss.push_back(measure({"ss", "-xp"}));
    lsofs.push_back(measure({"lsof", "-n"}));
  }
  Run lx = median(lxs), ss = median(sss), lsof = median(lsofs);
  for (const auto& r : lxs)
    if (r.exitCode != 0) lx.exitCode = r.exitCode;
  killAll();

  if (json) {
    std::printf(
        "{\"repeat\": %d, \"processes\": %zu, \"groups\": %zu, \"partition_wrong\": %zu, \"scan_ms\": %.1f,"
        " \"lxmig_groups_ms\": %.1f, \"lxmig_groups_max_rss_kib\": %ld, \"ss_ms\": %.1f, \"ss_max_rss_kib\": %ld,"
        " \"lsof_ms\": %.1f, \"lsof_max_rss_kib\": %ld, \"baseline_ms\": %.1f, \"ratio\": %.3f}\n",
        repeat, scan.processes.size(), expected.size(), wrong, scanMs, lx.wallMs, lx.maxRssKiB, ss.wallMs, ss.maxRssKiB,
        lsof.wallMs, lsof.maxRssKiB, ss.wallMs + lsof.wallMs, lx.wallMs / (ss.wallMs + lsof.wallMs));
  }
  {
    // The table always goes to stderr; with --json, stdout has the figures.
    auto& out = json ? stderr : stdout;
    auto printf = [&](const char* fmt, auto... args) { std::fprintf(out, fmt, args...); };
    printf("processes scanned %zu, expected groups %zu, wrongly partitioned %zu\n", scan.processes.size(),
           expected.size(), wrong);
    printf("%-34s %10s %14s\n", "", "wall ms", "peak RSS MiB");
    printf("%-34s %10.1f %14s\n", "scanNode() in process", scanMs, "-");
    printf("%-34s %10.1f %14.1f\n", "lxmig --json groups --all", lx.wallMs, lx.maxRssKiB / 1024.0);
    printf("%-34s %10.1f %14.1f\n", "ss -xp", ss.wallMs, ss.maxRssKiB / 1024.0);
    printf("%-34s %10.1f %14.1f\n", "lsof -n", lsof.wallMs, lsof.maxRssKiB / 1024.0);
    printf("ratio lxmig / (ss + lsof): %.3f\n", lx.wallMs / (ss.wallMs + lsof.wallMs));
  }
  if (lx.exitCode != 0) std::fprintf(stderr, "grouping_bench: lxmig groups exited %d\n", lx.exitCode);
  return wrong == 0 && lx.exitCode == 0 ? 0 : 1;
}
