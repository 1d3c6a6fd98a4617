-- wrk script for benchmarks/bench_ingest.py: every request uploads one report with a client
-- token of its own.
--
-- Usage: wrk -t T -c C -d D -s upload.lua URL -- TOKENS_FILE BODY_FILE PATH T
--   TOKENS_FILE  one pre-registered client token per line (thread k takes lines k, k+T, ...)
--   BODY_FILE    the prepared report body (JSON), the same for every request
--   PATH         /v1/tasks/<task id>/reports
--   T            the number of wrk threads (as given to -t)
-- A thread that runs out of tokens reuses its last one: those uploads get 409 and count as
-- refused, so size TOKENS_FILE above the expected rate times the duration.
-- done() prints one JSON line: 201s, other answers, latency percentiles, socket errors.

local threads = {}
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local tokens_file, body_file, nthreads = args[1], args[2], tonumber(args[4])
  path = args[3]
  tokens = {}
  local line_no = 0
  for line in io.lines(tokens_file) do
    if line_no % nthreads == id then
      tokens[#tokens + 1] = line
    end
    line_no = line_no + 1
  end
  local file = assert(io.open(body_file, "rb"))
  body = file:read("*a")
  file:close()
  nxt = 1
  accepted = 0
  refused = 0
end

function request()
  local token = tokens[nxt] or tokens[#tokens]
  nxt = nxt + 1
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, response_body)
  if status == 201 then
    accepted = accepted + 1
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local ok, other = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("accepted")
    other = other + thread:get("refused")
  end
  local e = summary.errors
  io.write(string.format(
    '{"accepted": %d, "refused": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    ok, other, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout))
end
