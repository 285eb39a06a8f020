// lxmig checkpoint / restore on a real two-node test bed, through the CLI:
// a container saved to a file and continued from it on the other node
// (same pids, same address, its state where it was); --leave-running keeps
// it, and a restore beside it is refused; a damaged or cut file restores
// nothing; a file that cannot be written leaves the container running.
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::testing {
namespace {

// Counts in /tmp/count inside the container, five times a second.
constexpr const char* kCounter = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done";

class CheckpointTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(2); }
  static void TearDownTestSuite() { downAfterSuite(); }

  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = "/tmp/lxit-ckpt-" + std::to_string(::getpid());
    ASSERT_TRUE(makeDirs(dir_, 0700).ok());
  }
  void TearDown() override {
    for (const char* c : {"ck", "ck-copy", "ck-full"}) (void)tb().lxmig({"rm", c});
    if (mounted_) ::umount2((dir_ + "/small").c_str(), MNT_DETACH);
    (void)removeTree(dir_);
    TestbedSuite::TearDown();
  }

  void runCounter(const std::string& name, const std::string& node) {
    Cli r = tb().lxmig({"--node", node, "run", "--name", name, "--", "/bin/sh", "-c", kCounter});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // The shell truncates the file before it writes the next number: a read
  // that catches it empty is asked again.
  int count(const std::string& name) {
    std::string out;
    for (int i = 0; i < 20 && out.empty(); ++i)
      out = std::string(trim(tb().lxmig({"exec", name, "--", "cat", "/tmp/count"}).out));
    return std::atoi(out.c_str());
  }
  std::string ipOf(const std::string& name) {
    auto ps = tb().lxmig({"--json", "ps"}).json();
    if (ps.is_object() && ps["containers"].is_array())
      for (const auto& c : ps["containers"])
        if (c.value("name", "") == name) return c.value("ip", "");
    return "";
  }
  // The counter's shell: its pid inside the container.
  std::string shellPid(const std::string& name) {
    return std::string(trim(tb().lxmig({"exec", name, "--", "sh", "-c", "pgrep -o -x sh"}).out));
  }
  // Staged writable areas or images a restore left on a node.
  std::vector<std::string> leftovers(const std::string& node) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(tb().stateDir(node), ec))
      if (e.path().filename().string().rfind(".incoming-", 0) == 0) out.push_back(e.path().string());
    return out;
  }

  std::string dir_;
  bool mounted_ = false;
};

TEST_F(CheckpointTest, AContainerMovesThroughAFileToAnotherNode) {
  runCounter("ck", "n1");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const std::string ip = ipOf("ck"), pid = shellPid("ck");
  ASSERT_FALSE(ip.empty());
  ASSERT_FALSE(pid.empty());
  const std::string file = dir_ + "/ck.ckpt";
  // A partial file left by a checkpoint that was cut off is never taken over.
  ASSERT_TRUE(writeFileAtomic(file + ".partial", "cut off\n").ok());
  Cli stale = tb().lxmig({"checkpoint", "ck", "--export", file});
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.err.find(".partial exists"), std::string::npos) << stale.err;
  EXPECT_EQ(nodeOf("ck"), "n1");
  ASSERT_EQ(::unlink((file + ".partial").c_str()), 0);
  Cli c = tb().lxmig({"--json", "checkpoint", "ck", "--export", file});
  ASSERT_EQ(c.code, 0) << c.err << c.out;
  EXPECT_EQ(c.json()["node"], "n1") << c.out;
  EXPECT_EQ(c.json()["left_running"], false) << c.out;
  EXPECT_TRUE(pathExists(file));
  EXPECT_FALSE(pathExists(file + ".partial"));
  EXPECT_EQ(nodeOf("ck"), "") << "a checkpoint without --leave-running stops the container";
  // Nothing counted while it was a file.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  Cli r = tb().lxmig({"--json", "--node", "n2", "restore", "--import", file});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.json()["node"], "n2") << r.out;
  EXPECT_EQ(r.json()["ip"], ip) << r.out;
  EXPECT_EQ(r.json()["checkpoint_id"], c.json()["id"]) << r.out;
  EXPECT_EQ(nodeOf("ck"), "n2");
  EXPECT_EQ(shellPid("ck"), pid) << "the same process continues";
  int after = count("ck");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_GT(count("ck"), after) << "it counts on";

  // Both ends are in the audit: the checkpoint as a migration to
  // "checkpoint" on n1, the restore with its event on n2.
  Cli a1 = tb().lxmig({"--node", "n1", "--json", "audit", "show", c.json()["id"].get<std::string>()});
  ASSERT_EQ(a1.code, 0) << a1.err;
  EXPECT_EQ(a1.json()["target"], "checkpoint") << a1.out;
  EXPECT_EQ(a1.json()["result"], "committed") << a1.out;
  Cli ev = tb().lxmig({"--node", "n2", "audit", "query",
                       "SELECT count(*) AS n FROM events WHERE text LIKE 'restored from checkpoint " +
                           c.json()["id"].get<std::string>() + " taken on n1'",
                       "--json"});
  ASSERT_EQ(ev.code, 0) << ev.err;
  auto rows = ev.json()["rows"];
  ASSERT_TRUE(rows.is_array() && rows.size() == 1) << ev.out;
  EXPECT_EQ(rows[0][1], 1) << ev.out;
}

TEST_F(CheckpointTest, LeaveRunningKeepsItAndARestoreBesideItIsRefused) {
  runCounter("ck", "n1");
  const std::string file = dir_ + "/ck.ckpt";
  // What the file holds is at least this: the copy restored from it starts
  // there, while `ck` counts on after the checkpoint (CI caught a copy
  // read before its first tick below a count read after the checkpoint).
  const int atCheckpoint = count("ck");
  Cli c = tb().lxmig({"checkpoint", "ck", "--export", file, "--leave-running"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(nodeOf("ck"), "n1");
  int before = count("ck");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_GT(count("ck"), before) << "it runs on after the checkpoint";

  // Its address is taken: a copy beside it would be a second one.
  Cli beside = tb().lxmig({"--node", "n2", "restore", "--import", file, "--name", "ck-copy"});
  EXPECT_EQ(beside.code, 1);
  EXPECT_NE(beside.err.find("is used by `ck` on n1"), std::string::npos) << beside.err;
  EXPECT_EQ(std::count(beside.err.begin(), beside.err.end(), '\n'), 1) << beside.err;
  EXPECT_EQ(nodeOf("ck-copy"), "");
  EXPECT_TRUE(leftovers("n2").empty());

  // Once it is gone, the file continues it under another name (asked of
  // n1's agent, which relays the file to n2).
  ASSERT_EQ(tb().lxmig({"rm", "ck"}).code, 0);
  Cli r = tb().lxmig(tb().through("n1", "n2", {"restore", "--import", file, "--name", "ck-copy"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nodeOf("ck-copy"), "n2");
  EXPECT_GE(count("ck-copy"), atCheckpoint);
}

TEST_F(CheckpointTest, ADamagedOrCutFileRestoresNothing) {
  runCounter("ck", "n1");
  const std::string file = dir_ + "/ck.ckpt";
  ASSERT_EQ(tb().lxmig({"checkpoint", "ck", "--export", file}).code, 0);
  auto bytes = readFile(file);
  ASSERT_TRUE(bytes.ok());
  ASSERT_GT(bytes->size(), 10000u);

  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x20;
  ASSERT_TRUE(writeFileAtomic(dir_ + "/flipped.ckpt", flipped).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/cut.ckpt", bytes->substr(0, bytes->size() - 100)).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/other.ckpt", "#!/bin/sh\necho not a checkpoint\n").ok());
  const std::pair<const char*, const char*> cases[] = {
      {"flipped.ckpt", "damaged"}, {"cut.ckpt", "cut short"}, {"other.ckpt", "not an lxmig checkpoint"}};
  for (const auto& [name, why] : cases) {
    Cli r = tb().lxmig({"--node", "n2", "restore", "--import", dir_ + "/" + name});
    EXPECT_EQ(r.code, 2) << name << ": " << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << name << ": " << r.err;
    EXPECT_EQ(nodeOf("ck"), "") << name;
    EXPECT_TRUE(leftovers("n2").empty()) << name;
  }
  // The intact file still restores.
  Cli r = tb().lxmig({"--node", "n2", "restore", "--import", file});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nodeOf("ck"), "n2");
}

TEST_F(CheckpointTest, AFileThatCannotBeWrittenLeavesTheContainerRunning) {
  runCounter("ck-full", "n1");
  const std::string small = dir_ + "/small";
  ASSERT_TRUE(makeDirs(small, 0700).ok());
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k"), 0);
  mounted_ = true;
  Cli c = tb().lxmig({"checkpoint", "ck-full", "--export", small + "/ck.ckpt"});
  EXPECT_EQ(c.code, 1) << c.err;
  EXPECT_NE(c.err.find("No space left"), std::string::npos) << c.err;
  EXPECT_FALSE(pathExists(small + "/ck.ckpt"));
  EXPECT_FALSE(pathExists(small + "/ck.ckpt.partial"));
  EXPECT_EQ(nodeOf("ck-full"), "n1");
  int before = count("ck-full");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_GT(count("ck-full"), before) << "the container thawed";
}

// What CRIU cannot save is refused as a migration would be: the reason in
// one line (it read "Cancelled on the server side"), no file, the
// container running where it was, the refusal in the audit.
TEST_F(CheckpointTest, ARefusedCheckpointSaysWhyAndWritesNoFile) {
  Cli run = tb().lxmig({"--node", "n1", "run", "--name", "ck", "--", "python3", "-c",
                        "import ctypes,os,time\n"
                        "c = ctypes.CDLL(None, use_errno=True)\n"
                        "assert c.mq_open(b'/ckq', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0\n"
                        "open('/tmp/ready', 'w').close()\n"
                        "time.sleep(1e6)\n"});
  ASSERT_EQ(run.code, 0) << run.err;
  for (int i = 0; i < 50 && tb().lxmig({"exec", "ck", "--", "test", "-e", "/tmp/ready"}).code != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string file = dir_ + "/ck.ckpt";
  Cli c = tb().lxmig({"checkpoint", "ck", "--export", file});
  EXPECT_EQ(c.code, 1) << c.err;
  EXPECT_NE(c.err.find("lxmig: checkpoint ck: refused: POSIX message queue `/ckq` is open in pid"), std::string::npos)
      << c.err;
  EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << c.err;
  EXPECT_FALSE(pathExists(file));
  EXPECT_FALSE(pathExists(file + ".partial"));
  EXPECT_EQ(nodeOf("ck"), "n1");
  Cli j = tb().lxmig({"--json", "checkpoint", "ck", "--export", file});
  EXPECT_EQ(j.code, 1);
  EXPECT_EQ(j.json()["result"], "refused") << j.out;
  auto l = tb().lxmig({"--json", "audit", "list", "--container", "ck"}).json();
  ASSERT_TRUE(l.is_object() && !l["migrations"].empty()) << l.dump();
  EXPECT_EQ(l["migrations"][0]["result"], "refused");
  EXPECT_EQ(l["migrations"][0]["target"], "checkpoint");
}

}  // namespace
}  // namespace lxmig::testing
