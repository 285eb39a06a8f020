// lxmig merge on a real two-node test bed, through the CLI: a producer in
// one container writes a numbered sequence into a FIFO of a directory both
// containers bind, a consumer in the other checks every number; merged,
// the producer's processes continue in the consumer's container with the
// same pids, and the merged container migrates to n2 and back, the checker
// seeing no number lost or twice. Each refusal reason gets its one line and
// touches nothing; a CRIU restore that fails after the dump, and an agent
// that dies before the commit, leave both containers running as before.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::testing {
namespace {

class MergeTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(2); }
  static void TearDownTestSuite() { downAfterSuite(); }

  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = "/tmp/lxit-merge-" + std::to_string(::getpid());
    ASSERT_TRUE(makeDirs(dir_, 0755).ok());
    ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0666), 0);
    ASSERT_TRUE(makeDirs(dir_ + "/own", 0755).ok());
    ASSERT_TRUE(writeFileAtomic(dir_ + "/own/marker", "the producer's own bind\n").ok());
  }
  void TearDown() override {
    for (const auto& c : containers_) (void)tb().lxmig({"rm", c});
    (void)removeTree(dir_);
    TestbedSuite::TearDown();
  }

  Cli run(const std::string& name, const std::vector<std::string>& extra, const std::string& script) {
    std::vector<std::string> args = {"--node", "n1", "run", "--name", name};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", "/bin/sh", "-c", script});
    Cli r = tb().lxmig(args);
    if (r.code == 0) containers_.push_back(name);
    return r;
  }
  // The producer writes 1, 2, 3, ... into the FIFO as fast as the consumer
  // reads (the FIFO stays full); the consumer checks that each number is
  // the one after the last, writing a line into `errors` when not, and
  // the number it reached into `last` every 100.
  // The producer also serves its counter on its own address (port 7300,
  // published), which the merged container answers on afterwards, and
  // works in a directory only it binds (/own, read-only).
  void startPipeline(const std::string& producer, const std::string& consumer) {
    const std::string bind = dir_ + ":/shared:rw";
    const std::string tools = tb().workloadsDir() + ":/opt/lxmig-tests";
    Cli c = run(consumer, {"--bind", bind, "--bind", tools},
                "prev=0; while read n; do if [ \"$n\" != $((prev+1)) ]; then echo \"after $prev came $n\" >> "
                "/shared/errors; fi; prev=$n; [ $((n % 100)) = 0 ] && echo $n > /shared/last.new && "
                "mv /shared/last.new /shared/last; done < /shared/fifo");
    ASSERT_EQ(c.code, 0) << c.err;
    Cli p = run(producer, {"--bind", bind, "--bind", tools, "--bind", dir_ + "/own:/own", "--publish", "7300"},
                "cd /own; /opt/lxmig-tests/counter_server --port 7300 & seq 1 1000000000 > /shared/fifo");
    ASSERT_EQ(p.code, 0) << p.err;
    producerIp_ = ipOf(producer);
    ASSERT_NE(tb().waitServer(producerIp_, 7300), "") << "the producer's server never answered at " << producerIp_;
    ASSERT_TRUE(advances()) << "the pipeline does not run";
  }
  long long last() {
    auto text = readFile(dir_ + "/last");
    return text.ok() ? std::atoll(std::string(trim(*text)).c_str()) : -1;
  }
  // The consumer moves on: both run and the FIFO between them works.
  bool advances() {
    long long a = last();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      long long now = last();
      if (a >= 0 && now > a) return true;
      if (a < 0) a = now;
    }
    return false;
  }
  std::string errors() { return readFile(dir_ + "/errors").value_or(""); }
  // The conformance programs (tests/conformance), built beside the workloads.
  std::string confDir() {
    const std::string w = tb().workloadsDir();
    return w.substr(0, w.rfind('/')) + "/conformance/bin";
  }
  // The end of the CRIU log a failed migration names, to see why.
  static std::string criuLogOf(const Cli& r) {
    const std::string mark = "(CRIU log: ";
    auto at = r.err.find(mark);
    if (at == std::string::npos) return "";
    auto end = r.err.find(')', at);
    auto text = readFile(r.err.substr(at + mark.size(), end - at - mark.size())).value_or("");
    return text.size() > 6000 ? text.substr(text.size() - 6000) : text;
  }
  // The pipeline's lasting processes in a container (ps run in it): each
  // shell the init started and the producer's seq; not the init, ps, or
  // what the consumer forks for a moment (mv, and sh before it execs).
  std::set<int> pidsIn(const std::string& name) {
    Cli r = tb().lxmig({"exec", name, "--", "ps", "-eo", "pid=,ppid=,comm="});
    std::set<int> out;
    for (const auto& line : split(r.out, '\n')) {
      std::vector<std::string> f;
      for (const auto& x : split(std::string(trim(line)), ' '))
        if (!x.empty()) f.push_back(x);
      if (f.size() == 3 && ((f[1] == "1" && f[2] == "sh") || f[2] == "seq")) out.insert(std::atoi(f[0].c_str()));
    }
    return out;
  }

  std::string ipOf(const std::string& name) {
    const auto ps = tb().lxmig({"--json", "ps"}).json();
    for (const auto& c : ps["containers"])
      if (c["name"] == name) return c["ip"];
    return "";
  }
  // Whether the container's eth0 has the address (ip run in it).
  bool holds(const std::string& name, const std::string& ip) {
    Cli r = tb().lxmig({"exec", name, "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0"});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.find(" " + ip + "/") != std::string::npos;
  }
  // After a rollback: each container as before, the producer's server
  // answering on the producer's address, which the consumer does not have.
  void expectAsBefore(const std::set<int>& producerPids, const std::set<int>& consumerPids, long long serverPid) {
    EXPECT_EQ(nodeOf("producer"), "n1");
    EXPECT_EQ(pidsIn("producer"), producerPids);
    EXPECT_EQ(pidsIn("consumer"), consumerPids);
    EXPECT_TRUE(advances()) << "the pipeline did not continue";
    EXPECT_EQ(errors(), "");
    EXPECT_EQ(field(tb().waitServer(producerIp_, 7300, 5000), "pid"), serverPid);
    EXPECT_FALSE(holds("consumer", producerIp_));
    EXPECT_TRUE(extraIpsOf("consumer").empty());
    EXPECT_FALSE(sees("consumer", "/own/marker"));
  }
  bool sees(const std::string& name, const std::string& path) {
    return tb().lxmig({"exec", name, "--", "test", "-e", path}).code == 0;
  }
  std::vector<std::string> extraIpsOf(const std::string& name) {
    const auto ps = tb().lxmig({"--json", "ps"}).json();
    for (const auto& c : ps["containers"])
      if (c["name"] == name) return c["extra_ips"].get<std::vector<std::string>>();
    return {};
  }

  std::string dir_, producerIp_;
  std::vector<std::string> containers_;
};

TEST_F(MergeTest, AFifoPipelineAcrossTwoContainersIsMergedAndMigratedWithoutALostByte) {
  startPipeline("producer", "consumer");
  const std::set<int> producerPids = pidsIn("producer");
  ASSERT_FALSE(producerPids.empty());
  const long long serverPid = field(tb().clientRequest(producerIp_, 7300, "GET"), "pid");
  ASSERT_GT(serverPid, 0);
  // Each container's workload has a pid range of its own.
  for (int p : pidsIn("consumer")) EXPECT_EQ(producerPids.count(p), 0u) << p;

  Cli dry = tb().lxmig({"merge", "consumer", "producer", "--name", "consumer", "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("would merge 2 containers into `consumer`"), std::string::npos) << dry.out;
  EXPECT_EQ(nodeOf("producer"), "n1");

  Cli r = tb().lxmig({"--json", "merge", "consumer", "producer", "--name", "consumer"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const auto j = r.json();
  EXPECT_EQ(j["name"], "consumer");
  ASSERT_EQ(j["reports"].size(), 1u) << r.out;
  EXPECT_EQ(j["reports"][0]["mode"], "merge");
  EXPECT_EQ(j["reports"][0]["result"], "committed");
  EXPECT_EQ(j["reports"][0]["container"], "producer");
  std::set<std::string> phases;
  for (const auto& ph : j["reports"][0]["phases"]) phases.insert(ph["name"].get<std::string>());
  for (const char* want : {"check", "dump", "restore", "commit"}) EXPECT_EQ(phases.count(want), 1u) << want << r.out;
  // One container, the producer's processes in it with their pids.
  EXPECT_EQ(nodeOf("producer"), "");
  const std::set<int> after = pidsIn("consumer");
  for (int p : producerPids) EXPECT_EQ(after.count(p), 1u) << "pid " << p << " of the producer is not in consumer";
  EXPECT_TRUE(advances()) << "the pipeline stopped with the merge";
  // The producer's address and published port are the merged container's
  // now: the same server answers there.
  Cli fw = tb().lxmig({"fw", "list", "consumer"});
  EXPECT_NE(fw.out.find("dport 7300"), std::string::npos) << fw.out << fw.err;
  EXPECT_EQ(extraIpsOf("consumer"), std::vector<std::string>{producerIp_});
  EXPECT_TRUE(holds("consumer", producerIp_));
  // The producer's bind is the merged container's too, read-only as it was.
  EXPECT_TRUE(sees("consumer", "/own/marker"));
  EXPECT_NE(tb().lxmig({"exec", "consumer", "--", "touch", "/own/x"}).code, 0) << "/own became writable";
  EXPECT_EQ(j["extra_ips"], nlohmann::json::array({producerIp_})) << r.out;
  EXPECT_EQ(field(tb().waitServer(producerIp_, 7300, 5000), "pid"), serverPid) << "not answered at " << producerIp_;

  // The merged container moves as one, and back, by both modes.
  Cli there = tb().lxmig({"migrate", "consumer", "--to", "n2", "--mode", "stop-and-copy"});
  ASSERT_EQ(there.code, 0) << there.err << there.out << criuLogOf(there);
  EXPECT_TRUE(advances()) << "the pipeline stopped with the migration to n2";
  EXPECT_EQ(field(tb().waitServer(producerIp_, 7300, 5000), "pid"), serverPid) << "not answered on n2";
  Cli back = tb().lxmig({"migrate", "consumer", "--to", "n1", "--mode", "pre-copy"});
  ASSERT_EQ(back.code, 0) << back.err << back.out << criuLogOf(back);
  EXPECT_TRUE(advances()) << "the pipeline stopped with the migration back";
  EXPECT_EQ(field(tb().waitServer(producerIp_, 7300, 5000), "pid"), serverPid) << "not answered back on n1";
  EXPECT_TRUE(sees("consumer", "/own/marker")) << "the bind did not travel with the spec";
  EXPECT_EQ(errors(), "") << "the consumer saw numbers lost or twice";
  EXPECT_GT(last(), 0);

  // The audit has the merge, on the node, as a local step.
  Cli audit = tb().lxmig({"--json", "audit", "query", "--node", "n1",
                          "SELECT role, result FROM migrations WHERE mode = 'merge' AND container = 'producer' "
                          "ORDER BY started_ms DESC LIMIT 1"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  EXPECT_EQ(audit.json()["rows"][0][1], "local") << audit.out;
  EXPECT_EQ(audit.json()["rows"][0][2], "committed") << audit.out;
}

TEST_F(MergeTest, WhatCannotBeMergedIsRefusedInOneLineEachAndNothingIsTouched) {
  Cli a = run("keeper", {"--bind", dir_ + ":/shared:rw"}, "exec sleep 1000000 <>/shared/fifo");
  ASSERT_EQ(a.code, 0) << a.err;
  struct Case {
    std::string name;
    std::vector<std::string> flags;
    std::string script, line;
  };
  const std::vector<Case> cases = {
      // A file of its own writable area: the kept container does not see it.
      {"own-file", {}, "cd /tmp && exec sleep 1000000", "uses /tmp (cwd), which keeper does not see"},
      // Another host directory at a path the kept container binds (a bind
      // the kept container lacks is added to it instead).
      {"other-bind",
       {"--bind", "/var/tmp:/shared:rw"},
       "cd /shared && exec sleep 1000000",
       "has the bind /var/tmp at /shared, where keeper has " + dir_},
      // An open tun device, which CRIU dumps only with its network namespace.
      {"tun",
       {"--device", "/dev/net/tun", "--bind", tb().workloadsDir() + ":/opt/lxmig-tests"},
       "exec /opt/lxmig-tests/counter_server --port 7301 --hold /dev/net/tun",
       "holds /dev/net/tun open: CRIU dumps a tun device only with its network namespace"},
      // A TCP connection: a merge carries listeners and their addresses,
      // not a connection's state.
      {"connected",
       {},
       "exec python3 -c 'import socket,time; l=socket.socket(); l.bind((\"127.0.0.1\",7300)); l.listen(); "
       "c=socket.create_connection((\"127.0.0.1\",7300)); s,_=l.accept(); time.sleep(1000000)'",
       "holds a connection (tcp 127.0.0.1:"},
      // What lives in its IPC namespace, not in a process: named by id or
      // by name, it would end with the namespace.
      // (System V objects are made again in the kept container with their
      // ids, but for a segment removed while attached.)
      {"sysv-rmid",
       {"--bind", confDir() + ":/opt/conf"},
       "exec /opt/conf/sysv_shm_rmid",
       "its System V shm 0 was removed (IPC_RMID) while still attached: a merge cannot make it again"},
      {"posix-mq",
       {},
       ": > /dev/mqueue/jobs && exec sleep 1000000",
       "its /dev/mqueue holds 1 POSIX message queue(s) (`jobs`), which a merge does not carry"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Cli r = run(c.name, c.flags, c.script);
    ASSERT_EQ(r.code, 0) << r.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // python3 connects
    const std::set<int> before = pidsIn(c.name);
    Cli m = tb().lxmig({"merge", "keeper", c.name, "--name", "keeper"});
    EXPECT_EQ(m.code, 1) << m.out;
    EXPECT_NE(m.err.find(c.line), std::string::npos) << m.err;
    for (const auto& line : split(m.err, '\n'))
      if (!line.empty()) {
        EXPECT_EQ(line.rfind("lxmig: merge refused: " + c.name + ": ", 0), 0u) << line;
      }
    // Nothing touched: both run as before.
    EXPECT_EQ(nodeOf(c.name), "n1");
    EXPECT_EQ(pidsIn(c.name), before);
  }
  Cli audit = tb().lxmig({"--json", "audit", "query", "--node", "n1",
                          "SELECT count(*) FROM migrations WHERE mode = 'merge' AND result = 'refused'"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  EXPECT_GE(audit.json()["rows"][0][1].get<int>(), 3) << audit.out;
  // Bad requests: one line each.
  Cli notOne = tb().lxmig({"merge", "keeper", "own-file", "--name", "third"});
  EXPECT_NE(notOne.code, 0);
  EXPECT_NE(notOne.err.find("is not one of the containers"), std::string::npos) << notOne.err;
  Cli twice = tb().lxmig({"merge", "keeper", "keeper"});
  EXPECT_NE(twice.code, 0);
  EXPECT_NE(twice.err.find("named twice"), std::string::npos) << twice.err;
  Cli one = tb().lxmig({"merge", "keeper"});
  EXPECT_EQ(one.code, 2) << one.err;
}

// A device of the merged container joins the kept one: bound in and allowed
// while it runs (CRIU carries no open /dev/net/tun without its network
// namespace, so the process only has it configured), and the device need
// travels: n2 does not offer /dev/net/tun, so the merged container may not
// go there any more.
TEST_F(MergeTest, AMergedContainersDeviceJoinsTheKeptOne) {
  Cli k = run("plain", {}, "exec sleep 1000000");
  ASSERT_EQ(k.code, 0) << k.err;
  Cli t = run("tunnel",
              {"--device", "/dev/net/tun", "--publish", "7300", "--bind", tb().workloadsDir() + ":/opt/lxmig-tests"},
              "exec /opt/lxmig-tests/counter_server --port 7300");
  ASSERT_EQ(t.code, 0) << t.err;
  const std::string ip = ipOf("tunnel");
  const long long pid = field(tb().waitServer(ip, 7300), "pid");
  ASSERT_GT(pid, 0);
  const std::vector<std::string> openTun = {"exec", "plain", "--", "/bin/sh", "-c", "exec 3<>/dev/net/tun"};
  EXPECT_NE(tb().lxmig(openTun).code, 0) << "plain opens /dev/net/tun before the merge";

  Cli m = tb().lxmig({"merge", "plain", "tunnel"});
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  EXPECT_EQ(field(tb().waitServer(ip, 7300, 5000), "pid"), pid);
  Cli opened = tb().lxmig(openTun);
  EXPECT_EQ(opened.code, 0) << opened.err;
  Cli dev = tb().lxmig({"--json", "devices", "plain"});
  ASSERT_EQ(dev.code, 0) << dev.err;
  EXPECT_NE(dev.out.find("configured: --device /dev/net/tun"), std::string::npos) << dev.out;
  Cli there = tb().lxmig({"migrate", "plain", "--to", "n2"});
  EXPECT_NE(there.code, 0);
  EXPECT_NE(there.err.find("/dev/net/tun"), std::string::npos) << there.err;
  EXPECT_EQ(nodeOf("plain"), "n1");
  EXPECT_EQ(field(tb().waitServer(ip, 7300, 5000), "pid"), pid);
}

// A Unix socket listener on a path in a shared bind is carried, and its
// clients reconnect; a connection between the two containers is refused
// (CRIU sees a socket's peer only in its own network namespace).
// A Unix connection between the two containers is carried: the merged
// container's end is handed over whole (CRIU's dump names it external, the
// restore takes the very socket from the stopped original), so the stream
// through it goes on with no line lost or twice; the listener is carried
// too and answers new connections from the same process.
//
// Both ends are tried: the accepted socket lives in the connecting
// socket's network namespace, so merging the listener's container hands
// over a socket its own namespace does not show, and merging the client's
// hands over one whose peer is visible to the dump.
class MergeUnixTest : public MergeTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(MergeUnixTest, AConnectionAcrossContainersAndItsListenerAreCarried) {
  const std::string keep = GetParam(), gone = keep == "client" ? "listener" : "client";
  const std::string bind = dir_ + ":/shared:rw";
  Cli b = run("listener", {"--bind", bind},
              "exec python3 -c 'import socket,os,threading\n"
              "def serve(c):\n"
              "  c.sendall(b\"hello from %d\\n\" % os.getpid())\n"
              "  f=c.makefile(\"rb\")\n"
              "  for line in f: c.sendall(line)\n"
              "  c.close()\n"
              "s=socket.socket(socket.AF_UNIX); s.bind(\"/shared/sock\"); s.listen()\n"
              "while True: threading.Thread(target=serve, args=(s.accept()[0],)).start()'");
  ASSERT_EQ(b.code, 0) << b.err;
  // Sends 1, 2, 3, ... through one connection and checks that each echo
  // is the number it sent; the number reached goes to /shared/unix-last.
  Cli a =
      run("client", {"--bind", bind},
          "exec python3 -c 'import socket,os,time\n"
          "while not os.path.exists(\"/shared/sock\"): time.sleep(0.1)\n"
          "s=socket.socket(socket.AF_UNIX); s.connect(\"/shared/sock\"); f=s.makefile(\"rb\"); f.readline()\n"
          "n=0\n"
          "while True:\n"
          "  n+=1; s.sendall(b\"%d\\n\" % n); got=f.readline()\n"
          "  if got != b\"%d\\n\" % n: open(\"/shared/unix-errors\", \"a\").write(\"sent %d got %r\\n\" % (n, got))\n"
          "  if n % 100 == 0:\n"
          "    open(\"/shared/unix-last.new\", \"w\").write(str(n)); os.rename(\"/shared/unix-last.new\", "
          "\"/shared/unix-last\"); time.sleep(0.01)'");
  ASSERT_EQ(a.code, 0) << a.err;
  auto reached = [&] { return std::atoll(std::string(trim(readFile(dir_ + "/unix-last").value_or("-1"))).c_str()); };
  auto moves = [&] {
    const long long from = reached();
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (from >= 0 && reached() > from) return true;
    }
    return false;
  };
  for (int i = 0; i < 100 && reached() < 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(moves()) << "the stream through the Unix connection does not run";
  const std::vector<std::string> ask = {
      "exec", keep,
      "--",   "python3",
      "-c",   "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/shared/sock'); print(s.recv(100).decode())"};
  const std::string before = tb().lxmig(ask).out;
  ASSERT_NE(before.find("hello from "), std::string::npos) << before;

  // One container's processes join the other's, the connection's end
  // handed over.
  Cli merged = tb().lxmig({"--json", "merge", keep, gone});
  ASSERT_EQ(merged.code, 0) << merged.err << merged.out;
  containers_.erase(std::remove(containers_.begin(), containers_.end(), gone), containers_.end());
  EXPECT_EQ(nodeOf(gone), "");
  const long long at = reached();
  EXPECT_TRUE(moves()) << "the stream stopped at " << at << " after the merge";
  EXPECT_EQ(readFile(dir_ + "/unix-errors").value_or(""), "");
  EXPECT_EQ(tb().lxmig(ask).out, before) << "the same listener process answers";
  // The report says what was handed.
  std::string dumpDetail;
  const auto report = merged.json();
  for (const auto& ph : report["reports"][0]["phases"])
    if (ph["name"] == "dump") dumpDetail = ph["detail"].get<std::string>();
  EXPECT_NE(dumpDetail.find("unix_handed=1"), std::string::npos) << merged.out;

  // The merged container moves as one, the connection inside it now (the
  // handed socket still belongs to the merged container's old network
  // namespace: CRIU finds it there).
  Cli there = tb().lxmig({"migrate", keep, "--to", "n2", "--mode", "pre-copy"});
  ASSERT_EQ(there.code, 0) << there.err << there.out << criuLogOf(there);
  EXPECT_TRUE(moves()) << "the stream stopped with the migration to n2";
  Cli back = tb().lxmig({"migrate", keep, "--to", "n1", "--mode", "stop-and-copy"});
  ASSERT_EQ(back.code, 0) << back.err << back.out << criuLogOf(back);
  EXPECT_TRUE(moves()) << "the stream stopped with the migration back";
  EXPECT_EQ(readFile(dir_ + "/unix-errors").value_or(""), "");
  EXPECT_EQ(tb().lxmig(ask).out, before) << "the same listener process answers after the moves";
}

INSTANTIATE_TEST_SUITE_P(EitherEnd, MergeUnixTest, ::testing::Values("client", "listener"));

// The System V objects of the merged container's IPC namespace (the
// conformance program sysv_ipc: a segment with content, a semaphore set, a
// message queue) are made again with their ids in the kept container's,
// which its processes then use; an id the kept container has already is
// refused first, naming it. The program checks everything after the merge
// and a migration of the merged container.
TEST_F(MergeTest, SystemVObjectsOfTheMergedContainerKeepTheirIds) {
  const std::string conf = confDir();
  ASSERT_TRUE(pathExists(conf + "/sysv_ipc")) << conf;
  const std::string bind = dir_ + ":/shared:rw";
  // The kept container holds a segment of its own first: id 0, as the
  // merged one's (each IPC namespace counts from 0).
  Cli k = run("keeper", {"--bind", bind}, "ipcmk -M 4096 >/dev/null; exec sleep 1000000");
  ASSERT_EQ(k.code, 0) << k.err;
  Cli b = run("ipc", {"--bind", conf + ":/opt/conf", "--bind", bind, "-e", "CONF_OUT=/shared/verdict"},
              "exec /opt/conf/sysv_ipc");
  ASSERT_EQ(b.code, 0) << b.err;
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    ready = tb().lxmig({"exec", "ipc", "--", "test", "-e", "/tmp/conf.ready"}).code == 0;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ready) << readFile(dir_ + "/verdict").value_or("");

  Cli refused = tb().lxmig({"merge", "keeper", "ipc"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("ipc: its System V shm 0 has the id of one in keeper's IPC namespace"), std::string::npos)
      << refused.err;
  ASSERT_EQ(tb().lxmig({"exec", "keeper", "--", "ipcrm", "--all=shm"}).code, 0);
  // The objects of the kept container: the table's header lines only.
  auto keptObjects = [&] {
    Cli r =
        tb().lxmig({"exec", "keeper", "--", "sh", "-c", "cat /proc/sysvipc/shm /proc/sysvipc/sem /proc/sysvipc/msg"});
    EXPECT_EQ(r.code, 0) << r.err;
    return std::count(r.out.begin(), r.out.end(), '\n') - 3;
  };
  EXPECT_EQ(keptObjects(), 0);

  // A restore that fails after the copy takes the copies back.
  ASSERT_TRUE(tb().restartAgent("n1", {"--fail-at", "merge-restore"}).ok());
  Cli failed = tb().lxmig({"merge", "keeper", "ipc"});
  EXPECT_EQ(failed.code, 1) << failed.out;
  EXPECT_NE(failed.err.find("CRIU restore into `keeper` failed"), std::string::npos) << failed.err;
  EXPECT_EQ(keptObjects(), 0) << "the copied System V objects stayed in keeper";
  EXPECT_EQ(nodeOf("ipc"), "n1");
  ASSERT_TRUE(tb().restartAgent("n1").ok());

  Cli merged = tb().lxmig({"--json", "merge", "keeper", "ipc"});
  ASSERT_EQ(merged.code, 0) << merged.err << merged.out << criuLogOf(merged);
  containers_.erase(std::remove(containers_.begin(), containers_.end(), "ipc"), containers_.end());
  const auto report = merged.json();
  std::string restoreDetail;
  for (const auto& ph : report["reports"][0]["phases"])
    if (ph["name"] == "restore") restoreDetail = ph["detail"].get<std::string>();
  EXPECT_NE(restoreDetail.find("sysv=copied"), std::string::npos) << merged.out;
  // The objects are the kept container's now (and move with it).
  EXPECT_EQ(keptObjects(), 3);
  Cli there = tb().lxmig({"migrate", "keeper", "--to", "n2", "--mode", "pre-copy"});
  ASSERT_EQ(there.code, 0) << there.err << there.out << criuLogOf(there);

  ASSERT_EQ(tb().lxmig({"exec", "keeper", "--", "pkill", "-TERM", "-x", "sysv_ipc"}).code, 0);
  std::string verdict;
  for (int i = 0; i < 100 && verdict.empty(); ++i) {
    verdict = std::string(trim(readFile(dir_ + "/verdict").value_or("")));
    if (verdict.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(verdict, "PASS");
}

// A migrated container has clocks of its own (CRIU's time namespace keeps
// them going from where they were dumped): its processes may join a
// container whose clocks read ahead, never one whose clocks read behind.
// Merged, the container migrates again (one time and one cgroup namespace).
TEST_F(MergeTest, ClocksOnlyMoveForwardAndAMergedContainerMovesAgain) {
  for (const char* name : {"moved", "fresh"}) {
    Cli r = run(name, {}, "exec sleep 1000000");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  for (const char* to : {"n2", "n1"}) {
    Cli m = tb().lxmig({"migrate", "moved", "--to", to, "--mode", "stop-and-copy"});
    ASSERT_EQ(m.code, 0) << m.err;
  }
  Cli back = tb().lxmig({"merge", "moved", "fresh", "--name", "moved"});
  EXPECT_EQ(back.code, 1) << back.out;
  EXPECT_NE(back.err.find("lxmig: merge refused: fresh: its clocks read "), std::string::npos) << back.err;
  EXPECT_NE(back.err.find("merge into fresh instead (--name fresh)"), std::string::npos) << back.err;
  EXPECT_EQ(nodeOf("moved"), "n1");
  Cli forward = tb().lxmig({"merge", "moved", "fresh", "--name", "fresh"});
  ASSERT_EQ(forward.code, 0) << forward.err;
  EXPECT_EQ(nodeOf("moved"), "");
  for (const char* to : {"n2", "n1"}) {
    Cli m = tb().lxmig({"migrate", "fresh", "--to", to});
    EXPECT_EQ(m.code, 0) << m.err;
  }
  // Both sleeps run in it, after the merge and the two migrations.
  Cli ps = tb().lxmig({"exec", "fresh", "--", "ps", "-eo", "comm="});
  size_t sleeps = 0;
  for (const auto& line : split(ps.out, '\n')) sleeps += trim(line) == "sleep";
  EXPECT_EQ(sleeps, 2u) << ps.out;
}

// A merge of containers on another node: the CLI asks its own agent (n1,
// no cluster file), which forwards it to n2 over the peer port; n2 records
// the forwarded command.
TEST_F(MergeTest, AMergeOnAnotherNodeIsForwardedByTheLocalAgent) {
  for (const char* name : {"far-a", "far-b"}) {
    Cli r = tb().lxmig({"--node", "n2", "run", "--name", name, "--", "/bin/sh", "-c", "exec sleep 1000000"});
    ASSERT_EQ(r.code, 0) << r.err;
    containers_.push_back(name);
  }
  Cli m = tb().lxmig(tb().through("n1", "n2", {"--json", "merge", "far-a", "far-b", "--name", "far-a"}));
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  EXPECT_EQ(m.json()["name"], "far-a") << m.out;
  EXPECT_EQ(nodeOf("far-a"), "n2");
  EXPECT_EQ(nodeOf("far-b"), "");
  Cli ps = tb().lxmig({"exec", "far-a", "--", "ps", "-eo", "comm="});
  size_t sleeps = 0;
  for (const auto& line : split(ps.out, '\n')) sleeps += trim(line) == "sleep";
  EXPECT_EQ(sleeps, 2u) << ps.out;
  auto events = runCommand({"sqlite3", tb().stateDir("n2") + "/state/audit.db",
                            "SELECT count(*) FROM node_events WHERE kind = 'forwarded' AND peer = 'n1' AND text LIKE "
                            "'merge far-a far-b forwarded by n1%'"});
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(std::atoi(events->out.c_str()), 1) << "n2's audit: " << events->out;
}

TEST_F(MergeTest, ARestoreThatFailsLeavesBothContainersAsTheyWere) {
  ASSERT_TRUE(tb().restartAgent("n1", {"--fail-at", "merge-restore"}).ok());
  startPipeline("producer", "consumer");
  const std::set<int> producerPids = pidsIn("producer"), consumerPids = pidsIn("consumer");
  const long long serverPid = field(tb().clientRequest(producerIp_, 7300, "GET"), "pid");
  Cli r = tb().lxmig({"--json", "merge", "consumer", "producer"});
  EXPECT_EQ(r.code, 1) << r.out;
  const auto j = r.json();
  ASSERT_EQ(j["reports"].size(), 1u) << r.out;
  EXPECT_EQ(j["reports"][0]["result"], "aborted") << r.out;
  EXPECT_NE(j["reports"][0]["error"].get<std::string>().find("CRIU restore into `consumer` failed"), std::string::npos)
      << r.out;
  // The producer was dumped and continues where it was; no copy is left.
  expectAsBefore(producerPids, consumerPids, serverPid);
  ASSERT_TRUE(tb().restartAgent("n1").ok());
}

// The agent dies after the restore, before the commit: its restart kills
// the copies and continues the originals.
TEST_F(MergeTest, AnAgentThatDiesBeforeTheCommitLeavesBothContainersAsTheyWere) {
  ASSERT_TRUE(tb().restartAgent("n1", {"--fail-at", "merge-crash"}).ok());
  startPipeline("producer", "consumer");
  const std::set<int> producerPids = pidsIn("producer"), consumerPids = pidsIn("consumer");
  const long long serverPid = field(tb().clientRequest(producerIp_, 7300, "GET"), "pid");
  Cli r = tb().lxmig({"merge", "consumer", "producer"});
  EXPECT_NE(r.code, 0) << r.out;
  ASSERT_TRUE(tb().restartAgent("n1").ok());
  expectAsBefore(producerPids, consumerPids, serverPid);
  Cli audit = tb().lxmig({"--json", "audit", "query", "--node", "n1",
                          "SELECT result FROM migrations WHERE mode = 'merge' AND container = 'producer' "
                          "ORDER BY started_ms DESC LIMIT 1"});
  ASSERT_EQ(audit.code, 0) << audit.err;
  EXPECT_EQ(audit.json()["rows"][0][1], "aborted") << audit.out;
}

}  // namespace
}  // namespace lxmig::testing
