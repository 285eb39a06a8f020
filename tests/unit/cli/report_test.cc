// A migration report as text and JSON, and the progress line: the layout
// operators read and the keys scripts read.
#include <gtest/gtest.h>

#include "output/progress.h"
#include "output/report.h"

namespace lxmig::cli {
namespace {

v1::MigrationReport sample() {
  v1::MigrationReport r;
  r.set_id("m1");
  r.set_container("web");
  r.set_source("n1");
  r.set_target("n2");
  r.set_mode(v1::MODE_PRE_COPY);
  r.set_tracker(v1::TRACKER_UFFD_WP);
  r.set_result(v1::RESULT_ABORTED);
  r.set_error("CRIU dump failed: boom");
  r.set_downtime_ms(123);
  r.set_total_ms(4567);
  r.set_bytes(123456789);
  for (int i = 0; i < 2; ++i) {
    auto* x = r.add_rounds();
    x->set_round(i);
    x->set_duration_ms(10 * i);
    x->set_dirty_pages(1000 * i);
    x->set_pages_sent(900);
    x->set_bytes(4096 * 900);
    x->set_dirty_rate_bps(1e6 * i);
    x->set_send_rate_bps(2.5e8);
    x->set_predicted_downtime_ms(49);
    x->set_stop(i == 1 ? "fits" : "");
  }
  auto* p = r.add_phases();
  p->set_phase(v1::PHASE_FREEZE);
  p->set_duration_ms(18);
  p->set_bytes(30000);
  p->set_result(v1::PHASE_RESULT_OK);
  p->set_detail("cgroup=v1 tasks=3");
  p = r.add_phases();
  p->set_phase(v1::PHASE_DUMP);
  p->set_duration_ms(24);
  p->set_result(v1::PHASE_RESULT_FAILED);
  p->set_error("boom");
  r.add_warnings("data link to n2 unavailable");
  r.add_events("t+5 freeze");
  return r;
}

TEST(Report, Text) {
  EXPECT_EQ(reportText(sample()),
            "migration m1: web n1 -> n2  aborted\n"
            "  error: CRIU dump failed: boom\n"
            "  mode pre-copy (uffd-wp), downtime 123 ms, total 4567 ms, 117.7 MiB transferred\n"
            "  warning: data link to n2 unavailable\n"
            "  ROUND  DURATION      DIRTY       SENT      BYTES   DIRTY RATE    SEND RATE  PREDICTED  STOP\n"
            "  0          0 ms        0 B    3.5 MiB    3.5 MiB        0 B/s  238.4 MiB/s          -  \n"
            "  1         10 ms    3.9 MiB    3.5 MiB    3.5 MiB  976.6 KiB/s  238.4 MiB/s      49 ms  fits\n"
            "  PHASE        DURATION        BYTES  RESULT\n"
            "  freeze          18 ms     29.3 KiB  ok  cgroup=v1 tasks=3\n"
            "  dump            24 ms            -  failed: boom\n"
            "  event: t+5 freeze\n");
}

TEST(Report, TextFromThePeerCannotReachTheTerminal) {
  auto r = sample();
  r.set_error("boom\x1b]0;owned\x07\nlxmig: fake line");
  r.set_warnings(0, "w\r");
  r.set_events(0, "\x1b[31mred");
  const std::string text = reportText(r);
  EXPECT_NE(text.find("  error: boom\\x1b]0;owned\\x07\\x0alxmig: fake line\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  warning: w\\x0d\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  event: \\x1b[31mred\n"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
}

TEST(Report, TextOfStopAndCopyHasNoRoundsOrTracker) {
  auto r = sample();
  r.clear_rounds();
  r.set_tracker(v1::TRACKER_NONE);
  std::string text = reportText(r);
  EXPECT_NE(text.find("  mode pre-copy, downtime"), std::string::npos) << text;
  EXPECT_EQ(text.find("ROUND"), std::string::npos) << text;
}

TEST(Report, JsonUsesVocabularyNames) {
  auto j = reportJson(sample());
  EXPECT_EQ(j["result"], "aborted");
  EXPECT_EQ(j["mode"], "pre-copy");
  EXPECT_EQ(j["tracker"], "uffd-wp");
  ASSERT_EQ(j["phases"].size(), 2u);
  EXPECT_EQ(j["phases"][1]["name"], "dump");
  EXPECT_EQ(j["phases"][1]["result"], "failed");
  EXPECT_EQ(j["rounds"][1]["stop"], "fits");
  for (const char* key : {"id", "container", "source", "target", "error", "reason", "started_ms", "downtime_ms",
                          "total_ms", "bytes", "warnings", "events"})
    EXPECT_TRUE(j.contains(key)) << key;
}

TEST(Progress, PrecopyRoundsAndEta) {
  v1::Progress p;
  p.set_phase(v1::PHASE_PRECOPY);
  p.set_round(0);
  p.set_dirty_bytes(8 << 20);
  p.set_bytes_done(1 << 20);
  EXPECT_EQ(progressLine(p), "[precopy] round 0 (all 8.0 MiB present); 1.0 MiB");
  p.set_round(2);
  p.set_dirty_bytes(8192);
  p.set_predicted_downtime_ms(77);
  EXPECT_EQ(progressLine(p), "[precopy] round 2, dirty 8.0 KiB, predicted downtime 77 ms; 1.0 MiB");
  p.set_phase(v1::PHASE_TRANSFER);
  p.set_bytes_total(4 << 20);
  p.set_rate_bps(1 << 20);
  EXPECT_EQ(progressLine(p), "[transfer] 1.0 MiB / 4.0 MiB  1.0 MiB/s  ETA 3.0s");
}

TEST(Progress, AdoptAndMergeNameTheContainerAndTheImages) {
  v1::Progress p;
  p.set_container("producer");
  p.set_phase(v1::PHASE_DUMP);
  EXPECT_EQ(stepProgressLine(p), "producer [dump]");
  p.set_bytes_done(5 << 20);
  p.set_rate_bps(100 << 20);
  EXPECT_EQ(stepProgressLine(p), "producer [dump] 5.0 MiB  100.0 MiB/s");
  v1::Progress r;
  r.set_container("producer");
  r.set_phase(v1::PHASE_RESTORE);
  r.set_bytes_total(5 << 20);
  EXPECT_EQ(stepProgressLine(r), "producer [restore] 5.0 MiB of images");
}

}  // namespace
}  // namespace lxmig::cli
