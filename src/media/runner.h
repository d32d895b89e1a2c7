#pragma once
// ProcessRunner: the seam to ffmpeg/ffprobe subprocesses (ARCHITECTURE
// principle 5: its in-memory twin is FakeProcessRunner).
//
// The real runner starts each program in its own process group with
// resource limits, feeds its stdout line by line to a callback, keeps the
// last bytes of its stderr for error messages, and on timeout, cancel or
// Stop() sends SIGTERM to the whole group, then SIGKILL after a grace
// period. Every child is reaped; stragglers left in the group when the
// program exits are killed.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "media/error.h"

namespace hub::media {

struct ProcessLimits {
  std::chrono::milliseconds timeout{0};        // wall clock; 0 = none
  std::chrono::milliseconds kill_grace{2000};  // SIGTERM -> SIGKILL
  int64_t cpu_seconds = 0;                     // RLIMIT_CPU; 0 = unlimited
  uint64_t address_space_bytes = 0;            // RLIMIT_AS; 0 = unlimited
};

struct ProcessSpec {
  // argv[0] is looked up in PATH when it has no '/'. No shell is involved.
  std::vector<std::string> argv;
  std::string working_dir;  // "" = the current directory
  ProcessLimits limits;
  // Called on Run's thread for each stdout line (without the '\n'); lines
  // longer than max_line_bytes arrive in pieces. May be empty.
  std::function<void(std::string_view line)> on_stdout_line;
  // Checked at least every 50 ms; when it becomes true the group is
  // terminated and Run returns ProcessEnd::kCancelled. Not owned; may be null.
  const std::atomic<bool>* cancel = nullptr;
  size_t max_line_bytes = 4096;
  size_t stderr_tail_bytes = 4096;
};

enum class ProcessEnd { kExited, kSignaled, kTimedOut, kCancelled };

struct ProcessResult {
  ProcessEnd end = ProcessEnd::kExited;
  int exit_code = -1;        // when it exited on its own
  int signal = 0;            // the signal that ended it, if one did
  std::string stderr_tail;   // the last stderr_tail_bytes of stderr
  std::chrono::milliseconds wall{0};
  bool success() const { return end == ProcessEnd::kExited && exit_code == 0; }
  // e.g. "exited with status 1: moov atom not found", "timed out after 30 s"
  std::string Describe() const;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs the program to its end on the calling thread. The Error cases:
  // errc::spawn_failed (not found, not executable, fork failed) and
  // errc::cancelled (after Stop()). A program that ran and failed is a
  // ProcessResult, not an Error. Thread-safe: Runs may overlap.
  virtual Result<ProcessResult> Run(const ProcessSpec& spec) = 0;
  // Terminates every running program (as on cancel) and refuses new ones;
  // returns once every Run has returned.
  virtual void Stop() = 0;
};

// The real runner (fork + execve, setpgid, setrlimit). Its destructor Stops.
std::unique_ptr<ProcessRunner> NewProcessRunner();

// The in-memory twin: records every spec and answers from a handler.
// Thread-safe.
class FakeProcessRunner final : public ProcessRunner {
 public:
  using Handler = std::function<Result<ProcessResult>(const ProcessSpec&)>;
  // A handler that feeds `stdout_lines` to the callback and exits with `code`.
  static Handler Exits(int code, std::vector<std::string> stdout_lines = {},
                       std::string stderr_tail = {});

  void SetHandler(Handler h);
  Result<ProcessResult> Run(const ProcessSpec& spec) override;
  void Stop() override;
  std::vector<std::vector<std::string>> calls() const;

 private:
  mutable std::mutex mu_;
  Handler handler_ = Exits(0);
  std::vector<std::vector<std::string>> calls_;
  bool stopped_ = false;
};

}  // namespace hub::media
