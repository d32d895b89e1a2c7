#include "media/runner.h"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "media/detail/test_util.h"
#include "media/progress.h"

namespace hub::media {
namespace {

using namespace std::chrono_literals;

ProcessSpec Sh(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"sh", "-c", script};
  spec.limits.timeout = 20s;  // a safety net: no test relies on it unless it says so
  return spec;
}

// True once /proc says `pid` is gone or a zombie (an orphan its new parent
// has not reaped yet is dead too). Waits up to 10 s.
bool Dead(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    auto paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z') return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

void ExpectNoChildrenLeft() {
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "a child was left unreaped";
}

TEST(RunnerTest, StdoutLinesExitCodeAndStderrTail) {
  auto runner = NewProcessRunner();
  ProcessSpec spec = Sh("echo one; printf 'two\\nthree'; echo oops >&2; exit 3");
  std::vector<std::string> lines;
  spec.on_stdout_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(r->end, ProcessEnd::kExited);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->success());
  EXPECT_EQ(r->stderr_tail, "oops\n");
  EXPECT_EQ(r->Describe(), "exited with status 3: oops");
  auto ok = runner->Run(Sh("true"));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->success());
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, OutputIsBounded) {
  auto runner = NewProcessRunner();
  ProcessSpec spec = Sh("head -c 10000 /dev/zero | tr '\\0' a; echo; head -c 20000 /dev/zero | tr '\\0' x >&2; echo END >&2");
  std::vector<size_t> sizes;
  spec.on_stdout_line = [&](std::string_view l) { sizes.push_back(l.size()); };
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(sizes, (std::vector<size_t>{4096, 4096, 1808}));
  EXPECT_EQ(r->stderr_tail.size(), 4096u);
  EXPECT_EQ(r->stderr_tail.substr(r->stderr_tail.size() - 4), "END\n");
}

TEST(RunnerTest, MissingProgramIsASpawnError) {
  auto runner = NewProcessRunner();
  ProcessSpec spec;
  spec.argv = {"hub-no-such-program-xyz"};
  auto r = runner->Run(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::spawn_failed);
  EXPECT_NE(r.error().message.find("not installed"), std::string::npos);
  spec.argv = {"/bin/sh"};
  spec.working_dir = "/no/such/dir";
  r = runner->Run(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::spawn_failed);
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, TimeoutKillsTheWholeProcessGroup) {
  auto runner = NewProcessRunner();
  // The shell starts a background sleep (same group) and prints its pid.
  ProcessSpec spec = Sh("sleep 100 & echo $!; sleep 100");
  spec.limits.timeout = 300ms;
  pid_t background = 0;
  spec.on_stdout_line = [&](std::string_view l) { background = std::stoi(std::string(l)); };
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end, ProcessEnd::kTimedOut);
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_LT(r->wall, 10s);
  EXPECT_NE(r->Describe().find("timed out"), std::string::npos);
  ASSERT_GT(background, 0);
  EXPECT_TRUE(Dead(background));
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, SigtermIgnoredMeansSigkillAfterTheGrace) {
  auto runner = NewProcessRunner();
  ProcessSpec spec = Sh("trap '' TERM; echo ready; while :; do sleep 1; done");
  spec.limits.timeout = 200ms;
  spec.limits.kill_grace = 300ms;
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end, ProcessEnd::kTimedOut);
  EXPECT_EQ(r->signal, SIGKILL);
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, StragglersAreKilledWhenTheLeaderExits) {
  auto runner = NewProcessRunner();
  // The background sleep keeps stdout open after the shell exits.
  ProcessSpec spec = Sh("sleep 100 & echo $!; exit 0");
  pid_t background = 0;
  spec.on_stdout_line = [&](std::string_view l) { background = std::stoi(std::string(l)); };
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->success());
  EXPECT_LT(r->wall, 10s);
  ASSERT_GT(background, 0);
  EXPECT_TRUE(Dead(background));
}

TEST(RunnerTest, AddressSpaceLimit) {
  if (!testing::HaveProgram("perl")) GTEST_SKIP() << "no perl";
  auto runner = NewProcessRunner();
  ProcessSpec spec;
  spec.argv = {"perl", "-e", "my $x = 'a' x (300 * 1024 * 1024); print length($x), qq(\\n);"};
  spec.limits.timeout = 20s;
  spec.limits.address_space_bytes = 128ull << 20;
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->success());
  EXPECT_NE(r->stderr_tail.find("Out of memory"), std::string::npos) << r->Describe();
  // The same program within its limit.
  spec.argv = {"perl", "-e", "my $x = 'a' x (1024 * 1024); print length($x), qq(\\n);"};
  r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->success()) << r->Describe();
}

TEST(RunnerTest, CpuLimit) {
  auto runner = NewProcessRunner();
  ProcessSpec spec = Sh("while :; do :; done");
  spec.limits.cpu_seconds = 1;
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end, ProcessEnd::kSignaled);
  EXPECT_TRUE(r->signal == SIGXCPU || r->signal == SIGKILL) << r->signal;
}

TEST(RunnerTest, CancelFromAnotherThread) {
  auto runner = NewProcessRunner();
  std::atomic<bool> cancel{false};
  std::promise<void> started;
  ProcessSpec spec = Sh("echo ready; sleep 100");
  spec.cancel = &cancel;
  spec.on_stdout_line = [&](std::string_view) { started.set_value(); };
  std::thread canceller([&] {
    started.get_future().wait();
    cancel = true;
  });
  auto r = runner->Run(spec);
  canceller.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end, ProcessEnd::kCancelled);
  EXPECT_EQ(r->signal, SIGTERM);
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, StopEndsRunningProcessesAndRefusesNewOnes) {
  auto runner = NewProcessRunner();
  std::promise<void> started;
  ProcessSpec spec = Sh("echo ready; sleep 100");
  spec.on_stdout_line = [&](std::string_view) { started.set_value(); };
  std::future<Result<ProcessResult>> running = std::async(std::launch::async, [&] { return runner->Run(spec); });
  started.get_future().wait();
  runner->Stop();
  auto r = running.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->end, ProcessEnd::kCancelled);
  auto after = runner->Run(Sh("true"));
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.code(), errc::cancelled);
  ExpectNoChildrenLeft();
}

TEST(RunnerTest, ProgressOfARealFfmpegRun) {
  if (!testing::HaveProgram("ffmpeg")) GTEST_SKIP() << "no ffmpeg";
  auto runner = NewProcessRunner();
  ProcessSpec spec;
  spec.argv = {"ffmpeg", "-hide_banner", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
               "-t", "3", "-progress", "pipe:1", "-nostats", "-f", "null", "-"};
  spec.limits.timeout = 30s;
  ProgressParser parser(3.0);
  std::vector<ProgressUpdate> updates;
  spec.on_stdout_line = [&](std::string_view l) {
    if (auto u = parser.Feed(l)) updates.push_back(*u);
  };
  auto r = runner->Run(spec);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->success()) << r->Describe();
  ASSERT_FALSE(updates.empty());
  EXPECT_TRUE(updates.back().end);
  EXPECT_EQ(updates.back().percent, 100);
  EXPECT_EQ(updates.back().frame, 75);
  EXPECT_NEAR(updates.back().out_time_us, 3'000'000, 100'000);
  for (size_t i = 1; i < updates.size(); ++i) EXPECT_GE(updates[i].percent, updates[i - 1].percent);
}

TEST(ProgressTest, ParsesBlocks) {
  ProgressParser p(10.0);
  EXPECT_FALSE(p.Feed("frame=10"));
  EXPECT_FALSE(p.Feed("out_time_us=N/A"));
  EXPECT_FALSE(p.Feed("garbage without equals"));
  auto u = p.Feed("progress=continue");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->percent, 0);
  EXPECT_FALSE(p.Feed("out_time_us=2500000"));
  EXPECT_FALSE(p.Feed("speed=2.5x"));
  u = p.Feed("progress=continue\r");
  ASSERT_TRUE(u);
  EXPECT_DOUBLE_EQ(u->percent, 25);
  EXPECT_DOUBLE_EQ(u->speed, 2.5);
  EXPECT_EQ(u->frame, 10);
  p.Feed("out_time_us=99000000");  // past the probed duration: clamped
  EXPECT_DOUBLE_EQ(p.Feed("progress=continue")->percent, 100);
  u = p.Feed("progress=end");
  EXPECT_TRUE(u->end);
}

TEST(FakeRunnerTest, RecordsCallsAndAnswers) {
  FakeProcessRunner fake;
  fake.SetHandler(FakeProcessRunner::Exits(1, {"progress=end"}, "boom\n"));
  ProcessSpec spec;
  spec.argv = {"ffmpeg", "-i", "x"};
  std::vector<std::string> lines;
  spec.on_stdout_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto r = fake.Run(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_EQ(r->Describe(), "exited with status 1: boom");
  EXPECT_EQ(lines, (std::vector<std::string>{"progress=end"}));
  EXPECT_EQ(fake.calls(), (std::vector<std::vector<std::string>>{{"ffmpeg", "-i", "x"}}));
  fake.Stop();
  EXPECT_EQ(fake.Run(spec).code(), errc::cancelled);
}

}  // namespace
}  // namespace hub::media
