-- wrk script: POST /v1/keys/verify with the keys of KEYS_FILE in turn, and
-- count answers that are not a valid key's.
local keys = {}
invalid = 0
local i = 0

function init(args)
  for line in io.lines(os.getenv("KEYS_FILE")) do
    if line ~= "" then keys[#keys + 1] = line end
  end
  i = math.random(#keys)
end

function request()
  i = i % #keys + 1
  return wrk.format("POST", "/v1/keys/verify", {["Content-Type"] = "application/json"},
    '{"key":"' .. keys[i] .. '","namespace":"ns"}')
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"valid":true', 1, true) then
    invalid = invalid + 1
  end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("invalid") end
  io.write(string.format("requests=%d rps=%.0f p99us=%.0f invalid=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(99), bad))
end
