#pragma once
// The composition root: builds every component from the configuration, wires
// them, runs them, and stops them in one written-down order.

#include <memory>

#include "config/config.h"
#include "core/result.h"

namespace hub::app {

class App {
 public:
  explicit App(config::Config config);
  ~App();
  // Opens storage, the index (rebuilding it from storage when needed), starts
  // the HTTP server and background work. Errors say what to fix.
  Result<void> Start();
  uint16_t http_port() const;
  // Blocks until Stop() or SIGINT/SIGTERM, then shuts down in order: stop
  // accepting, let in-flight requests finish (bounded), stop background work,
  // close the index.
  void Run();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hub::app
