-- wrk script for bench/run.sh.
--   BENCH_PATH        the request path (required)
--   BENCH_RANGE_LEN   if set: each request asks for that many bytes at a random offset
--   BENCH_FILE_SIZE   the file's size (with BENCH_RANGE_LEN)
-- done() prints one machine-readable line:
--   WRK requests=N bytes=B seconds=S errors=E status_errors=F
local path = os.getenv("BENCH_PATH")
local range_len = tonumber(os.getenv("BENCH_RANGE_LEN") or "")
local file_size = tonumber(os.getenv("BENCH_FILE_SIZE") or "")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  if not range_len then
    plain = wrk.format("GET", path)
  end
end

function request()
  if plain then return plain end
  local first = math.random(0, file_size - range_len)
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. first .. "-" .. (first + range_len - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d bytes=%d seconds=%.3f errors=%d status_errors=%d\n",
    summary.requests, summary.bytes, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status))
end
