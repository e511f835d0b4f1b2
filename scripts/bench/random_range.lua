-- wrk script for scripts/bench.sh: every request is a GET of the benchmark file
-- with one small Range at a uniformly random offset:
--   Range: bytes=START-(START+LEN-1)     (LEN = 65536 by default)
-- so that 0 <= START and START+LEN <= file size. Expected answer: 206.
--
-- Environment:
--   BENCH_FILE_SIZE  size of the file in bytes (default 1 GiB)
--   BENCH_RANGE_LEN  bytes per range (default 65536)
--
-- No response() callback on purpose: defining one makes wrk hand every body to
-- Lua, which would measure wrk rather than the server. Status errors are
-- counted by wrk itself ("Non-2xx or 3xx responses"), and scripts/bench.sh
-- checks the 206 + bytes separately with curl.

local size = tonumber(os.getenv("BENCH_FILE_SIZE") or "") or 1073741824
local len  = tonumber(os.getenv("BENCH_RANGE_LEN") or "") or 65536
local max_start = size - len
if max_start < 0 then
   error("BENCH_FILE_SIZE must be >= BENCH_RANGE_LEN")
end

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("thread_id", threads)
end

function init(args)
   -- distinct sequence per thread (thread_id is set by setup() above)
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
   for _ = 1, 10 do math.random() end
end

function request()
   local start = math.random(0, max_start)
   local range = string.format("bytes=%d-%d", start, start + len - 1)
   return wrk.format("GET", nil, { ["Range"] = range })
end
