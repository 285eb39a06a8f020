// lxmig adopt on a real two-node test bed, through the CLI: a process tree
// started on node n1's host (outside any container) is continued inside a
// new container with the same pids, memory and pipes, answers through its
// published port, and then migrates to n2 like any container. Each refusal
// reason gets its one line and touches nothing; nginx (root master, workers
// as nobody) started on the host is adopted and migrated, answering HTTP
// through its published port with the same worker pids; PostgreSQL (System
// V and POSIX shared memory, processes of uid postgres) is adopted and
// migrated with a table written before reading back the same; a CRIU restore that fails
// after the dump leaves the processes running on the host as they were.
// And migrate knows groups: it refuses to split one that spans containers
// (naming the partners, the edges and the merge that would make it one,
// after which it moves), and `migrate --group` moves the container that
// holds a group.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::testing {
namespace {

class AdoptTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(2); }
  static void TearDownTestSuite() { downAfterSuite(); }

  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = "/tmp/lxit-adopt-" + std::to_string(::getpid());
    ASSERT_TRUE(makeDirs(dir_, 0755).ok());
  }
  void TearDown() override {
    // Each started tree is a process group of its own (setsid): the group
    // goes, with whatever the tree started in the background.
    for (pid_t p : started_) {
      ::kill(-p, SIGKILL);
      ::kill(p, SIGKILL);
    }
    for (const auto& c : containers_) (void)tb().lxmig({"rm", c});
    (void)removeTree(dir_);
    ::unlink(("/dev/shm/lxit-adopt-" + std::to_string(::getpid())).c_str());
    TestbedSuite::TearDown();
  }

  // Starts `script` with sh on node n1's host, in a session of its own and
  // with no file of the test open; returns the pid the script prints
  // (`echo $!` of what it started in the background).
  pid_t startOnN1(const std::string& script) {
    auto r = tb().nodeExec("n1", {"/bin/sh", "-c", "cd / && " + script});
    EXPECT_EQ(r.exitCode, 0) << script << ": " << r.err;
    long long pid = std::atoll(std::string(trim(r.out)).c_str());
    EXPECT_GT(pid, 1) << "no pid in `" << r.out << "`";
    if (pid > 1) started_.push_back(static_cast<pid_t>(pid));
    return static_cast<pid_t>(pid);
  }
  // The counter server's answer on n1's host (before adoption).
  std::string askOnN1(int port) {
    auto r = tb().nodeExec(
        "n1", {"/bin/bash", "-c",
               "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + " && echo GET >&3 && timeout 3 head -n 1 <&3"});
    return std::string(trim(r.out));
  }
  // A producer | consumer pipeline in a session of its own, writing into
  // dir_/last (pipelineAdvances watches it); returns its root.
  pid_t startPipelineOnN1() {
    return startOnN1(
        "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done | while read n; do "
        "echo $n > " +
        dir_ + "/last; done' </dev/null >/dev/null 2>&1 & echo $!");
  }
  char stateOf(pid_t pid) {
    auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    if (!stat.ok()) return '?';
    auto close = stat->rfind(')');
    return close + 2 < stat->size() ? (*stat)[close + 2] : '?';
  }
  long long lastLine() {
    auto text = readFile(dir_ + "/last");
    return text.ok() ? std::atoll(std::string(trim(*text)).c_str()) : -1;
  }
  // The pipeline's consumer writes the numbers the producer sends: it moves
  // on as long as both run and the pipe between them works.
  bool pipelineAdvances() {
    long long a = lastLine();
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      long long now = lastLine();
      if (a >= 0 && now > a) return true;
      if (a < 0) a = now;  // not written yet
    }
    return false;
  }

  std::string dir_;
  std::vector<pid_t> started_;
  std::vector<std::string> containers_;
};

TEST_F(AdoptTest, HostTreeContinuesInAContainerAndMigrates) {
  const std::string w = tb().workloadsDir();
  // A tree of four: sh, the counter server (forking: it and its init-like
  // parent), and a producer | consumer pipeline writing into dir_.
  // It also holds a POSIX shared memory file, which the container gets.
  const std::string shm = "/dev/shm/lxit-adopt-" + std::to_string(::getpid());
  ASSERT_TRUE(writeFileAtomic(shm, "shared state\n").ok());
  pid_t root = startOnN1("setsid sh -c 'exec 7<" + shm + "; cd " + dir_ + " && " + w +
                         "/counter_server --port 7100 --fork & i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; "
                         "done | while read n; do echo $n > " +
                         dir_ + "/last; done' </dev/null >/dev/null 2>&1 & echo $!");
  ASSERT_GT(root, 1);
  std::string before;
  for (int i = 0; i < 50 && before.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    before = askOnN1(7100);
  }
  ASSERT_GT(field(before, "counter"), 0) << before;
  ASSERT_TRUE(pipelineAdvances());

  // The workload binary and the data directory are outside the container's
  // system directories: refused without --bind, with the binds that help.
  Cli refused = tb().lxmig({"--node", "n1", "adopt", "--pid", std::to_string(root), "--dry-run"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("which the container would not see (add --bind " + dir_ + ")"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("(add --bind " + w + ")"), std::string::npos) << refused.err;

  Cli r = tb().lxmig({"--node", "n1", "--json", "adopt", "--pid", std::to_string(root), "--name", "adopted", "--bind",
                      dir_, "--bind", w, "--publish", "7100"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  containers_.push_back("adopted");
  auto j = r.json();
  EXPECT_EQ(j["root_pid"], root);
  EXPECT_EQ(j["report"]["result"], "committed") << r.out;
  EXPECT_EQ(j["report"]["mode"], "adopt");
  EXPECT_GE(j["pids"].size(), 5u) << r.out;  // sh, two counter_server, the pipeline's two ends
  const std::string ip = j["ip"];
  // The same process: its pid inside the container and its start time did
  // not change, and its counter went on from where it was.
  std::string after = tb().waitServer(ip, 7100, 10000);
  ASSERT_NE(after, "") << "the adopted server does not answer at " << ip;
  EXPECT_EQ(field(after, "pid"), field(before, "pid")) << before << " / " << after;
  EXPECT_EQ(field(after, "start_ns"), field(before, "start_ns"));
  EXPECT_GE(field(after, "counter"), field(before, "counter"));
  EXPECT_TRUE(pipelineAdvances()) << "the pipeline stopped in the container";
  // The host copy is gone, its shared memory file moved into the container.
  EXPECT_EQ(::kill(root, 0) == 0 && stateOf(root) != 'Z', false);
  EXPECT_FALSE(pathExists(shm));
  Cli cat = tb().lxmig({"exec", "adopted", "--", "/bin/cat", shm});
  EXPECT_EQ(cat.code, 0) << cat.err;
  EXPECT_EQ(cat.out, "shared state\n");
  EXPECT_EQ(askOnN1(7100), "");
  // Audited like a migration.
  Cli audit = tb().lxmig(
      {"--json", "audit", "query", "--node", "n1", "SELECT mode, result FROM migrations WHERE container = 'adopted'"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  EXPECT_EQ(audit.json()["rows"][0][1], "adopt") << audit.out;  // after the node column
  EXPECT_EQ(audit.json()["rows"][0][2], "committed");

  // From now on it is a container like any other.
  Cli m = tb().lxmig({"migrate", "adopted", "--to", "n2"});
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  EXPECT_EQ(nodeOf("adopted"), "n2");
  std::string moved = tb().waitServer(ip, 7100, 10000);
  EXPECT_EQ(field(moved, "pid"), field(before, "pid")) << moved;
  EXPECT_EQ(field(moved, "start_ns"), field(before, "start_ns"));
  EXPECT_GE(field(moved, "counter"), field(after, "counter"));
  EXPECT_TRUE(pipelineAdvances()) << "the pipeline stopped after the migration";
}

// nginx as a distribution runs it: a root master and workers under their
// own uid (nobody), joined by socketpair channels, each with its epoll and
// eventfd, and a listening socket on all addresses.
TEST_F(AdoptTest, NginxStartedOnTheHostIsAdoptedAndMigrated) {
  if (!pathExists("/usr/sbin/nginx")) {
    ADD_FAILURE() << "nginx is not installed (scripts/setup.sh installs nginx-light)";
    return;
  }
  ASSERT_TRUE(makeDirs(dir_ + "/logs").ok());
  std::string conf = "daemon on;\nmaster_process on;\nworker_processes 2;\npid " + dir_ + "/nginx.pid;\nerror_log " +
                     dir_ + "/logs/error.log;\nevents { worker_connections 64; }\nhttp {\n  access_log " + dir_ +
                     "/logs/access.log;\n";
  for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
    conf += std::string("  ") + t + "_temp_path " + dir_ + "/" + t + ";\n";
  conf += "  server { listen 8080; location / { return 200 \"worker=$pid\\n\"; } }\n}\n";
  ASSERT_TRUE(writeFileAtomic(dir_ + "/nginx.conf", conf).ok());
  auto start = tb().nodeExec("n1", {"/bin/sh", "-c",
                                    "cd / && /usr/sbin/nginx -c " + dir_ + "/nginx.conf -p " + dir_ +
                                        "/ </dev/null >/dev/null 2>&1 && cat " + dir_ + "/nginx.pid"});
  ASSERT_EQ(start.exitCode, 0) << start.err;
  const pid_t master = static_cast<pid_t>(std::atoll(std::string(trim(start.out)).c_str()));
  ASSERT_GT(master, 1) << start.out;
  started_.push_back(master);
  auto httpOnN1 = [&] {
    return tb()
        .nodeExec("n1", {"/bin/bash", "-c",
                         "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && "
                         "timeout 3 cat <&3"})
        .out;
  };
  auto workerOf = [](const std::string& response) { return field(response, "worker"); };
  std::string before = httpOnN1();
  ASSERT_GT(workerOf(before), 0) << before;
  std::set<long long> workers;
  for (const auto& e : listDir("/proc").value_or({})) {
    auto stat = readFile("/proc/" + e + "/stat");
    if (!stat.ok()) continue;
    auto close = stat->rfind(')');
    auto f = split(stat->substr(close + 2), ' ');
    if (f.size() > 1 && f[1] == std::to_string(master)) workers.insert(std::atoll(e.c_str()));
  }
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_TRUE(workers.count(workerOf(before)));

  Cli r = tb().lxmig({"--node", "n1", "--json", "adopt", "--pid", std::to_string(master), "--name", "nginx", "--bind",
                      dir_, "--publish", "8080"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  containers_.push_back("nginx");
  const auto j = r.json();
  EXPECT_EQ(j["report"]["result"], "committed") << r.out;
  std::set<long long> inside;
  for (const auto& p : j["pids"]) inside.insert(p.get<long long>());
  EXPECT_TRUE(inside.count(master)) << r.out;
  for (long long w : workers) EXPECT_TRUE(inside.count(w)) << "worker " << w << " not in " << r.out;
  const std::string ip = j["ip"];
  // The first answer of a worker within 5 s.
  auto http = [&] {
    std::string answer;
    for (int i = 0; i < 50 && workerOf(answer) <= 0; ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      answer = tb().clientRequest(ip, 8080, "GET / HTTP/1.0\r\n", 3000);
    }
    return answer;
  };
  std::string after = http();
  EXPECT_NE(after.find("200 OK"), std::string::npos) << after;
  EXPECT_TRUE(workers.count(workerOf(after))) << "answered by " << workerOf(after) << ", not one of the same workers";

  Cli m = tb().lxmig({"migrate", "nginx", "--to", "n2", "--mode", "pre-copy"});
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  EXPECT_EQ(nodeOf("nginx"), "n2");
  std::string moved = http();
  EXPECT_NE(moved.find("200 OK"), std::string::npos) << moved;
  EXPECT_TRUE(workers.count(workerOf(moved))) << "answered by " << workerOf(moved) << " after the migration";
}

// PostgreSQL 15 as a distribution runs it: a postmaster and its auxiliary
// processes under uid postgres, a System V interlock segment, shared
// anonymous memory and POSIX shared memory in /dev/shm, a data directory.
TEST_F(AdoptTest, PostgresStartedOnTheHostIsAdoptedAndMigrated) {
  const std::string bin = "/usr/lib/postgresql/15/bin";
  if (!pathExists(bin + "/postgres")) {
    ADD_FAILURE() << "PostgreSQL 15 is not installed (scripts/setup.sh installs it)";
    return;
  }
  const std::string data = dir_ + "/data", sock = dir_ + "/sock";
  auto asPostgres = [&](const std::string& cmd) {
    return runCommand(
        {"/bin/sh", "-c", "cd / && setpriv --reuid=postgres --regid=postgres --init-groups sh -c '" + cmd + "'"},
        {.timeoutMs = 120000});
  };
  ASSERT_TRUE(makeDirs(sock, 0755).ok());
  ASSERT_EQ(runCommand({"chown", "-R", "postgres:postgres", dir_}, {})->exitCode, 0);
  auto init = asPostgres(bin + "/initdb -D " + data + " -A trust -U postgres >/dev/null");
  ASSERT_TRUE(init.ok() && init->exitCode == 0) << (init.ok() ? init->err : init.status().message());
  ASSERT_TRUE(writeFileAtomic(data + "/pg_hba.conf", "local all all trust\nhost all all 0.0.0.0/0 trust\n").ok());
  ASSERT_EQ(runCommand({"chown", "postgres:postgres", data + "/pg_hba.conf"}, {})->exitCode, 0);
  auto start = tb().nodeExec(
      "n1", {"/bin/sh", "-c",
             "cd / && setsid setpriv --reuid=postgres --regid=postgres --init-groups " + bin + "/postgres -D " + data +
                 " -c listen_addresses='*' -c port=5433 -c unix_socket_directories=" + sock +
                 " </dev/null >/dev/null 2>&1 &"});
  ASSERT_EQ(start.exitCode, 0) << start.err;
  auto psqlOnN1 = [&](const std::string& sql) {
    return tb().nodeExec("n1", {bin + "/psql", "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-Atc", sql});
  };
  CommandOutput ready;
  for (int i = 0; i < 100 && (ready = psqlOnN1("SELECT 1")).out != "1\n"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(ready.out, "1\n") << ready.err;
  auto pidFile = readFile(data + "/postmaster.pid");
  ASSERT_TRUE(pidFile.ok());
  const pid_t master = static_cast<pid_t>(std::atoll(pidFile->c_str()));
  ASSERT_GT(master, 1);
  started_.push_back(master);
  auto made = psqlOnN1("CREATE TABLE kept (n int, t text); INSERT INTO kept VALUES (1, 'written on the host')");
  ASSERT_EQ(made.exitCode, 0) << made.err;

  Cli r = tb().lxmig({"--node", "n1", "--json", "adopt", "--pid", std::to_string(master), "--name", "pg", "--bind",
                      dir_, "--publish", "5433"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  containers_.push_back("pg");
  const auto j = r.json();
  EXPECT_EQ(j["report"]["result"], "committed") << r.out;
  EXPECT_GE(j["pids"].size(), 5u) << r.out;  // postmaster, checkpointer, writers, launchers
  const std::string ip = j["ip"];
  // The host's copy of the interlock segment went with the host's tree.
  for (const auto& line : split(readFile("/proc/sysvipc/shm").value_or(""), '\n')) {
    auto f = split(line, ' ');
    EXPECT_FALSE(f.size() > 4 && f[4] == std::to_string(master)) << "left on the host: " << line;
  }
  auto psql = [&](const std::string& sql) {
    return tb().clientExec({bin + "/psql", "-h", ip, "-p", "5433", "-U", "postgres", "-Atc", sql});
  };
  auto read = psql("SELECT n, t FROM kept ORDER BY n");
  EXPECT_EQ(read.out, "1|written on the host\n") << read.err;
  auto ins = psql("INSERT INTO kept VALUES (2, 'written in the container')");
  EXPECT_EQ(ins.exitCode, 0) << ins.err;

  Cli m = tb().lxmig({"migrate", "pg", "--to", "n2"});
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  EXPECT_EQ(nodeOf("pg"), "n2");
  auto after = psql("SELECT n, t FROM kept ORDER BY n");
  EXPECT_EQ(after.out, "1|written on the host\n2|written in the container\n") << after.err;
  auto query = psql("SELECT count(*) > 0 FROM pg_stat_activity");
  EXPECT_EQ(query.out, "t\n") << query.err;
}

TEST_F(AdoptTest, EachRefusalHasItsLineAndTouchesNothing) {
  // Not in a session of its own (its session leader is the shell that
  // started it, which is gone).
  pid_t noSession = startOnN1("setsid sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $!' </dev/null 2>/dev/null");
  // A TCP connection (to a listener of its own tree: still a connection
  // the container's new address would break).
  pid_t connected =
      startOnN1("setsid sh -c '" + tb().workloadsDir() +
                "/counter_server --port 7101 & sleep 0.5; exec bash -c \"exec 3<>/dev/tcp/127.0.0.1/7101; "
                "exec sleep 1000\"' </dev/null >/dev/null 2>&1 & echo $!");
  // A device the node does not offer.
  pid_t device = startOnN1("setsid sh -c 'exec sleep 1000' </dev/kmsg >/dev/null 2>&1 & echo $!");
  // A FIFO shared with a process of another tree.
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  // (opened read-write: a read-only open would block until a writer comes)
  pid_t reader = startOnN1("setsid sh -c 'exec cat' <>" + dir_ + "/fifo >/dev/null 2>&1 & echo $!");
  pid_t writer = startOnN1("setsid sh -c 'exec sleep 1000' >" + dir_ + "/fifo </dev/null 2>&1 & echo $!");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the connection is made after 0.5 s

  struct Case {
    pid_t pid;
    std::string line;
  };
  for (const auto& c : std::vector<Case>{
           {noSession, "is in the session of pid"},
           {connected, "holds a connection (tcp 127.0.0.1:"},
           {device, "uses the device /dev/kmsg (fd 0), which this node does not offer to containers"},
           {reader, "shares fifo " + dir_ + "/fifo (fd 0) with pid " + std::to_string(writer) +
                        " (sleep), which is outside the process tree of pid " + std::to_string(reader)},
       }) {
    ASSERT_GT(c.pid, 1);
    Cli r = tb().lxmig({"--node", "n1", "adopt", "--pid", std::to_string(c.pid), "--bind", dir_, "--name", "refused"});
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.err.find("lxmig: adopt refused: pid " + std::to_string(c.pid)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.line), std::string::npos) << r.err;
    // Nothing touched: no container, the process runs on as before.
    EXPECT_EQ(nodeOf("refused"), "");
    EXPECT_EQ(::kill(c.pid, 0), 0);
    EXPECT_NE(stateOf(c.pid), 'T');
  }
  // Recorded as refused, with the reasons as events.
  Cli audit = tb().lxmig({"--json", "audit", "query", "--node", "n1",
                          "SELECT count(*) FROM migrations WHERE mode = 'adopt' AND result = 'refused'"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  EXPECT_GE(audit.json()["rows"][0][1].get<int>(), 4) << audit.out;
  // Bad flags: one line, exit 2.
  Cli both = tb().lxmig({"--node", "n1", "adopt", "--pid", "1", "--group", "g1.2"});
  EXPECT_EQ(both.code, 2) << both.err;
  Cli unknown = tb().lxmig({"--node", "n1", "adopt", "--group", "g0.0"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("no group `g0.0`"), std::string::npos) << unknown.err;
}

TEST_F(AdoptTest, ARestoreThatFailsLeavesTheProcessesOnTheHost) {
  ASSERT_TRUE(tb().restartAgent("n1", {"--fail-at", "adopt-restore"}).ok());
  pid_t root = startPipelineOnN1();
  ASSERT_GT(root, 1);
  ASSERT_TRUE(pipelineAdvances());
  Cli r = tb().lxmig(
      {"--node", "n1", "--json", "adopt", "--pid", std::to_string(root), "--bind", dir_, "--name", "failing"});
  EXPECT_EQ(r.code, 1) << r.out;
  auto j = r.json();
  EXPECT_EQ(j["report"]["result"], "aborted") << r.out;
  EXPECT_NE(j["report"]["error"].get<std::string>().find("CRIU restore into `failing` failed"), std::string::npos)
      << r.out;
  // The dump happened (the tree was stopped), the restore failed: the same
  // processes run on the host again, and no container is left.
  EXPECT_EQ(::kill(root, 0), 0);
  EXPECT_NE(stateOf(root), 'T');
  EXPECT_TRUE(pipelineAdvances()) << "the pipeline did not continue on the host";
  EXPECT_EQ(nodeOf("failing"), "");
  EXPECT_FALSE(pathExists(tb().stateDir("n1") + "/lxc/failing"));
  ASSERT_TRUE(tb().restartAgent("n1").ok());
}

// The agent dies with the host tree stopped (after the dump, before the
// restore): its restart continues the host tree and removes the container.
TEST_F(AdoptTest, AnAgentThatDiesMidwayLeavesTheProcessesOnTheHost) {
  ASSERT_TRUE(tb().restartAgent("n1", {"--fail-at", "adopt-crash"}).ok());
  pid_t root = startPipelineOnN1();
  ASSERT_GT(root, 1);
  ASSERT_TRUE(pipelineAdvances());
  Cli r = tb().lxmig({"--node", "n1", "adopt", "--pid", std::to_string(root), "--bind", dir_, "--name", "crashed"});
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_EQ(stateOf(root), 'T') << "the dump left the tree stopped";
  ASSERT_TRUE(tb().restartAgent("n1").ok());
  EXPECT_NE(stateOf(root), 'T');
  EXPECT_TRUE(pipelineAdvances()) << "the pipeline did not continue on the host";
  EXPECT_EQ(nodeOf("crashed"), "");
  EXPECT_FALSE(pathExists(tb().stateDir("n1") + "/lxc/crashed"));
  Cli audit = tb().lxmig(
      {"--json", "audit", "query", "--node", "n1", "SELECT result, error FROM migrations WHERE container = 'crashed'"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  const auto rows = audit.json();
  EXPECT_EQ(rows["rows"][0][1], "aborted") << audit.out;
}

TEST_F(AdoptTest, MigrateMovesGroupsWholeAndRefusesToSplitThem) {
  // Two containers holding one FIFO of a shared directory.
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0666), 0);
  for (const char* name : {"fifo-a", "fifo-b"}) {
    Cli r = tb().lxmig({"--node", "n1", "run", "--name", name, "--bind", dir_ + ":/shared:rw", "--", "/bin/sh", "-c",
                        "exec sleep 1000000 <>/shared/fifo"});
    ASSERT_EQ(r.code, 0) << r.err;
    containers_.push_back(name);
  }
  // And one whose pipeline stays inside it.
  Cli solo = tb().lxmig({"--node", "n1", "run", "--name", "solo", "--", "/bin/sh", "-c", "sleep 1000000 | cat"});
  ASSERT_EQ(solo.code, 0) << solo.err;
  containers_.push_back("solo");

  Cli m = tb().lxmig({"migrate", "fifo-a", "--to", "n2"});
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_NE(m.err.find("refused: `fifo-a` shares IPC with container fifo-b"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("fifo /shared/fifo between"), std::string::npos) << m.err;
  EXPECT_NE(m.err.find("lxmig merge fifo-a fifo-b --name fifo-a"), std::string::npos) << m.err;
  EXPECT_EQ(nodeOf("fifo-a"), "n1");

  // lxmig groups names the action per group.
  Cli g = tb().lxmig({"--node", "n1", "--json", "groups", "--container", "fifo-a"});
  ASSERT_EQ(g.code, 0) << g.err;
  std::string spanning;
  const auto scanned = g.json();  // named: iterating a temporary's member dangles
  for (const auto& grp : scanned["groups"])
    if (grp["verdict"] == "spans-containers") {
      spanning = grp["id"];
      EXPECT_EQ(grp["action"], "lxmig merge fifo-a fifo-b --name fifo-a");
    }
  ASSERT_FALSE(spanning.empty()) << g.out;
  Cli table = tb().lxmig({"--node", "n1", "groups", "--container", "fifo-b"});
  EXPECT_NE(table.out.find("to move it as one: lxmig merge fifo-a fifo-b --name fifo-a"), std::string::npos)
      << table.out;
  Cli byGroup = tb().lxmig({"migrate", "--group", spanning, "--to", "n2"});
  EXPECT_EQ(byGroup.code, 1);
  EXPECT_NE(byGroup.err.find("is spans-containers"), std::string::npos) << byGroup.err;

  // A group inside one container: --group moves that container.
  Cli sg = tb().lxmig({"--node", "n1", "--json", "groups", "--container", "solo"});
  ASSERT_EQ(sg.code, 0) << sg.err;
  std::string inside;
  const auto soloScan = sg.json();
  for (const auto& grp : soloScan["groups"])
    if (grp["verdict"] == "single-container") {
      inside = grp["id"];
      EXPECT_EQ(grp["action"], "none needed");
    }
  ASSERT_FALSE(inside.empty()) << sg.out;
  Cli moved = tb().lxmig({"migrate", "--group", inside, "--to", "n2"});
  EXPECT_EQ(moved.code, 0) << moved.err;
  EXPECT_EQ(nodeOf("solo"), "n2");

  // The merge the refusal names makes the group one container, which then
  // migrates (tests/integration/merge_test.cc tests merge itself).
  Cli merge = tb().lxmig({"merge", "fifo-a", "fifo-b", "--name", "fifo-a"});
  EXPECT_EQ(merge.code, 0) << merge.err;
  EXPECT_EQ(nodeOf("fifo-b"), "");
  Cli after = tb().lxmig({"migrate", "fifo-a", "--to", "n2"});
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(nodeOf("fifo-a"), "n2");
}

}  // namespace
}  // namespace lxmig::testing
