#include "media/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace hub::media {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kTick{50};  // latency of cancel/timeout checks

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) { Close(); fd_ = fd; }

 private:
  int fd_ = -1;
};

std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return "";
    dirs.remove_prefix(colon + 1);
  }
}

// In the child between fork and execve: async-signal-safe calls only.
[[noreturn]] void ChildExec(const char* path, char* const* argv, const char* cwd,
                            const ProcessLimits& limits, int out_w, int err_w, int status_w,
                            pid_t parent) {
  auto fail = [&](int step) {
    int payload[2] = {step, errno};
    ssize_t ignored = ::write(status_w, payload, sizeof payload);
    (void)ignored;
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail(1);
  // A hub killed with SIGKILL cannot kill its group: the kernel does it for
  // us (the job is redone after the restart). Fires when the forking thread
  // ends, which is the thread waiting for this child.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (limits.cpu_seconds > 0) {
    // Soft limit sends SIGXCPU; the hard limit one second later, SIGKILL.
    rlimit rl{static_cast<rlim_t>(limits.cpu_seconds), static_cast<rlim_t>(limits.cpu_seconds + 1)};
    if (::setrlimit(RLIMIT_CPU, &rl) != 0) fail(2);
  }
  if (limits.address_space_bytes > 0) {
    rlimit rl{limits.address_space_bytes, limits.address_space_bytes};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) fail(3);
  }
  if (cwd != nullptr && ::chdir(cwd) != 0) fail(4);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull < 0 || ::dup2(devnull, 0) < 0) fail(5);
  if (::dup2(out_w, 1) < 0 || ::dup2(err_w, 2) < 0) fail(5);
  // Every other descriptor the process holds (sockets, stores) closes at exec.
#ifdef SYS_close_range
  ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
  ::execve(path, argv, environ);
  fail(6);
  ::_exit(127);
}

class RealProcessRunner final : public ProcessRunner {
 public:
  ~RealProcessRunner() override { Stop(); }

  Result<ProcessResult> Run(const ProcessSpec& spec) override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return MakeError(errc::cancelled, "the media runner is shutting down");
      ++active_;
    }
    auto r = RunImpl(spec);
    {
      std::lock_guard lock(mu_);
      --active_;
    }
    cv_.notify_all();
    return r;
  }

  void Stop() override {
    std::unique_lock lock(mu_);
    stopped_ = true;
    stop_flag_ = true;
    cv_.wait(lock, [&] { return active_ == 0; });
  }

 private:
  Result<ProcessResult> RunImpl(const ProcessSpec& spec) {
    if (spec.argv.empty()) return MakeError(errc::spawn_failed, "no program to run");
    const std::string path = ResolveProgram(spec.argv[0]);
    if (path.empty()) {
      return MakeError(errc::spawn_failed,
                       spec.argv[0] + " is not installed or not executable (looked in PATH); "
                       "install it or set its path in the configuration");
    }
    std::vector<char*> argv;
    for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return SpawnError("pipe");
    Fd out_r(p[0]), out_w(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0) return SpawnError("pipe");
    Fd err_r(p[0]), err_w(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0) return SpawnError("pipe");
    Fd status_r(p[0]), status_w(p[1]);

    const auto start = Clock::now();
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return SpawnError("fork");
    if (pid == 0) {
      ChildExec(path.c_str(), argv.data(), spec.working_dir.empty() ? nullptr : spec.working_dir.c_str(),
                spec.limits, out_w.get(), err_w.get(), status_w.get(), parent);
    }
    // Also from the parent, so that a kill(-pid) right after fork reaches it.
    ::setpgid(pid, pid);
    out_w.Close();
    err_w.Close();
    status_w.Close();

    int payload[2] = {0, 0};
    ssize_t n;
    do {
      n = ::read(status_r.get(), payload, sizeof payload);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {  // the child failed before execve
      int status;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return MakeError(errc::spawn_failed, "could not start " + spec.argv[0] + ": " +
                                               std::strerror(payload[1]));
    }

    ProcessResult result;
    std::string line;
    const size_t max_line = spec.max_line_bytes > 0 ? spec.max_line_bytes : 4096;
    auto emit = [&](std::string_view s) {
      if (spec.on_stdout_line) spec.on_stdout_line(s);
    };
    auto on_out = [&](const char* data, size_t len) {
      for (size_t i = 0; i < len; ++i) {
        if (data[i] == '\n') {
          emit(line);
          line.clear();
        } else {
          line.push_back(data[i]);
          if (line.size() >= max_line) {
            emit(line);
            line.clear();
          }
        }
      }
    };
    auto on_err = [&](const char* data, size_t len) {
      result.stderr_tail.append(data, len);
      if (result.stderr_tail.size() > 2 * spec.stderr_tail_bytes) {
        result.stderr_tail.erase(0, result.stderr_tail.size() - spec.stderr_tail_bytes);
      }
    };
    // Reads what is available; returns false at EOF.
    auto pump = [&](Fd& fd, auto&& sink) {
      char buf[8192];
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got > 0) {
        sink(buf, static_cast<size_t>(got));
        return true;
      }
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
      fd.Close();
      return false;
    };

    const bool has_deadline = spec.limits.timeout.count() > 0;
    const auto deadline = start + spec.limits.timeout;
    bool terminating = false;
    Clock::time_point term_sent{};
    bool killed = false;
    bool exited = false;
    Clock::time_point drain_until{};
    while (true) {
      // 1. Has the leader exited? Look without reaping: while it is a zombie
      //    its pid (= the group id) cannot be reused, so killing the group
      //    below cannot hit an unrelated process.
      if (!exited) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid) {
          exited = true;
          ::kill(-pid, SIGKILL);  // stragglers left in the group
          drain_until = Clock::now() + milliseconds(500);
        }
      }
      if (exited && ((out_r.get() < 0 && err_r.get() < 0) || Clock::now() >= drain_until)) break;

      // 2. Timeout, cancel, Stop: SIGTERM the group, SIGKILL after the grace.
      const auto now = Clock::now();
      if (!exited && !terminating) {
        ProcessEnd why = ProcessEnd::kExited;
        if (has_deadline && now >= deadline) why = ProcessEnd::kTimedOut;
        if ((spec.cancel && spec.cancel->load()) || stop_flag_.load()) why = ProcessEnd::kCancelled;
        if (why != ProcessEnd::kExited) {
          result.end = why;
          terminating = true;
          term_sent = now;
          ::kill(-pid, SIGTERM);
        }
      }
      if (!exited && terminating && !killed && now >= term_sent + spec.limits.kill_grace) {
        killed = true;
        ::kill(-pid, SIGKILL);
      }

      // 3. Wait for output (or the next tick).
      pollfd fds[2];
      nfds_t nfds = 0;
      if (out_r.get() >= 0) fds[nfds++] = {out_r.get(), POLLIN, 0};
      if (err_r.get() >= 0) fds[nfds++] = {err_r.get(), POLLIN, 0};
      auto wait = kTick;
      if (has_deadline && !terminating && deadline > now) {
        wait = std::min(wait, std::chrono::ceil<milliseconds>(deadline - now));
      }
      if (nfds == 0) {
        std::this_thread::sleep_for(exited ? milliseconds(1) : wait);
        continue;
      }
      int ready = ::poll(fds, nfds, static_cast<int>(wait.count()));
      if (ready <= 0) continue;
      for (nfds_t i = 0; i < nfds; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (fds[i].fd == out_r.get()) {
          pump(out_r, on_out);
        } else {
          pump(err_r, on_err);
        }
      }
    }
    if (!line.empty()) emit(line);

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.wall = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    if (WIFEXITED(status)) {
      result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result.signal = WTERMSIG(status);
      if (result.end == ProcessEnd::kExited) result.end = ProcessEnd::kSignaled;
    }
    if (result.stderr_tail.size() > spec.stderr_tail_bytes) {
      result.stderr_tail.erase(0, result.stderr_tail.size() - spec.stderr_tail_bytes);
    }
    return result;
  }

  static Error SpawnError(const char* what) {
    return MakeError(errc::spawn_failed, std::string("could not start a program: ") + what +
                                             " failed: " + std::strerror(errno));
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
  bool stopped_ = false;
  std::atomic<bool> stop_flag_{false};
};

std::string LastLine(const std::string& text) {
  size_t end = text.find_last_not_of(" \r\n\t");
  if (end == std::string::npos) return {};
  size_t begin = text.rfind('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(begin, end - begin + 1);
}

}  // namespace

std::string ProcessResult::Describe() const {
  std::string s;
  switch (end) {
    case ProcessEnd::kExited: s = "exited with status " + std::to_string(exit_code); break;
    case ProcessEnd::kSignaled:
      s = "was killed by signal " + std::to_string(signal);
      if (signal == SIGXCPU || signal == SIGKILL) s += " (perhaps its CPU or memory limit)";
      break;
    case ProcessEnd::kTimedOut:
      s = "timed out after " + std::to_string(wall.count() / 1000) + " s";
      break;
    case ProcessEnd::kCancelled: s = "was cancelled"; break;
  }
  std::string last = LastLine(stderr_tail);
  if (!last.empty()) s += ": " + last;
  return s;
}

std::unique_ptr<ProcessRunner> NewProcessRunner() { return std::make_unique<RealProcessRunner>(); }

FakeProcessRunner::Handler FakeProcessRunner::Exits(int code, std::vector<std::string> lines,
                                                    std::string stderr_tail) {
  return [=](const ProcessSpec& spec) -> Result<ProcessResult> {
    for (const auto& l : lines) {
      if (spec.on_stdout_line) spec.on_stdout_line(l);
    }
    ProcessResult r;
    r.exit_code = code;
    r.stderr_tail = stderr_tail;
    return r;
  };
}

void FakeProcessRunner::SetHandler(Handler h) {
  std::lock_guard lock(mu_);
  handler_ = std::move(h);
}

Result<ProcessResult> FakeProcessRunner::Run(const ProcessSpec& spec) {
  Handler h;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return MakeError(errc::cancelled, "the media runner is shutting down");
    calls_.push_back(spec.argv);
    h = handler_;
  }
  return h(spec);
}

void FakeProcessRunner::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
}

std::vector<std::vector<std::string>> FakeProcessRunner::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

}  // namespace hub::media
