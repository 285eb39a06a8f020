// Components and verdicts from literal processes and edges (no kernel).
#include <gtest/gtest.h>

#include "lxmig/grouping/ipc_graph.h"

namespace lxmig::grouping {
namespace {

Process proc(pid_t pid, const std::string& container, uint64_t start) {
  Process p;
  p.pid = pid;
  p.comm = "p" + std::to_string(pid);
  p.container = container;
  p.startTime = start;
  return p;
}

Edge edge(const std::string& kind, pid_t a, pid_t b) {
  Edge e;
  e.kind = kind;
  e.object = kind + ":" + std::to_string(a) + "-" + std::to_string(b);
  e.a = {a, "fd 3"};
  e.b = {b, "fd 4"};
  return e;
}

TEST(GraphTest, ComponentsVerdictsAndCrossingFlags) {
  std::map<pid_t, Process> procs = {{1, proc(1, "", 10)},   {2, proc(2, "", 11)},   {3, proc(3, "web", 5)},
                                    {4, proc(4, "web", 6)}, {5, proc(5, "web", 7)}, {6, proc(6, "db", 8)},
                                    {7, proc(7, "", 9)},    {8, proc(8, "", 1)}};
  std::vector<Edge> edges = {edge(kPipe, 1, 2), edge(kPipe, 3, 4), edge(kUnixStream, 4, 5), edge(kUnixStream, 5, 6)};
  auto groups = buildGroups(procs, edges);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].members, (std::vector<pid_t>{1, 2}));
  EXPECT_EQ(groups[0].verdict, "host");
  EXPECT_EQ(groups[1].members, (std::vector<pid_t>{3, 4, 5, 6}));
  EXPECT_EQ(groups[1].verdict, "spans-containers");
  EXPECT_EQ(groups[1].containers, (std::vector<std::string>{"db", "web"}));
  EXPECT_NE(groups[1].why.find("5 (web) and 6 (db)"), std::string::npos) << groups[1].why;
  // What makes each movable as one.
  EXPECT_EQ(groups[0].action, "lxmig adopt --group " + groups[0].id);
  EXPECT_EQ(groups[1].action, "lxmig merge db web --name db");
  Scan named;
  named.processes = procs;
  named.groups = groups;
  EXPECT_EQ(movesAloneProblem(named, "db"), "`db` shares IPC with container web (group " + groups[1].id + ": " +
                                                groups[1].why +
                                                "); moving it alone would cut that: lxmig merge db web --name db");
  // Host processes in a container's group: adopt them, then merge.
  procs[9] = proc(9, "", 2);
  std::vector<Edge> mixed = {edge(kUnixStream, 3, 9)};
  auto both = buildGroups(procs, mixed);
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].action, "lxmig adopt --pid 9, then lxmig merge web adopted-9 --name web");
  EXPECT_FALSE(edges[0].crossesContainer);
  EXPECT_TRUE(edges[3].crossesContainer);
  // Id from the oldest member (pid 3, start 5).
  EXPECT_EQ(groups[1].id, "g3.5");

  Scan scan;
  scan.processes = procs;
  scan.edges = edges;
  scan.groups = groups;
  auto alone = groupOf(scan, 7);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->verdict, "alone");
  EXPECT_EQ(groupOf(scan, 99).status().code(), Code::kNotFound);
  auto web = groupsOfContainer(scan, "web");
  ASSERT_TRUE(web.ok());
  ASSERT_EQ(web->size(), 1u);
  EXPECT_EQ((*web)[0].id, "g3.5");
}

TEST(GraphTest, SingleContainerGroup) {
  std::map<pid_t, Process> procs = {{10, proc(10, "web", 1)}, {11, proc(11, "web", 2)}};
  std::vector<Edge> edges = {edge(kSysvShm, 10, 11)};
  auto groups = buildGroups(procs, edges);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].verdict, "single-container");
  EXPECT_EQ(groups[0].why, "");
}

}  // namespace
}  // namespace lxmig::grouping
