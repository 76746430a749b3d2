-- wrk's script for benchmarks/load.py: each wrk thread posts the signed transfers of its own file, one per
-- request, in order, and writes the command id of every 200 answer to its own file (one line each, so
-- nothing is lost when wrk stops). A thread that runs out of bodies posts nothing more (it reports it).
-- Read by wrk with: wrk -s load.lua URL -- BODIES_PREFIX ANSWERS_PREFIX; with no arguments, every request is
-- GET /v1/health (the HTTP layer's own rate), reported the same way.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

local bodies = {}
local next_body = 0
local answers = nil
ok, refused, exhausted = 0, 0, 0  -- globals: done() reads them from each thread

local health = false

function init(args)
  if args[1] == nil then
    health = true
    return
  end
  for line in io.lines(args[1] .. id .. ".jsonl") do
    bodies[#bodies + 1] = line
  end
  answers = io.open(args[2] .. id .. ".txt", "w")
  answers:setvbuf("line")
end

function request()
  if health then
    return wrk.format("GET", "/v1/health")
  end
  next_body = next_body + 1
  if next_body > #bodies then
    exhausted = exhausted + 1
    return wrk.format("GET", "/v1/health")  -- nothing is posted twice: an idempotent replay would flatter
  end
  return wrk.format("POST", "/v1/commands", {["Content-Type"] = "application/json"}, bodies[next_body])
end

function response(status, headers, body)
  if health then
    if status ~= 200 then refused = refused + 1 end
    return
  end
  if status == 200 then
    local cid = body:match('"command_id":"([^"]+)"')
    if cid then
      ok = ok + 1
      answers:write(cid, "\n")
    end
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local t_ok, t_refused, t_exhausted = 0, 0, 0
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_refused = t_refused + t:get("refused")
    t_exhausted = t_exhausted + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "answered_ok": %d, ' ..
    '"not_ok": %d, "exhausted": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, t_ok,
    t_refused, t_exhausted, e.connect + e.read + e.write + e.timeout))
end
