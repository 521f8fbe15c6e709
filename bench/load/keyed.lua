-- wrk script: rotates the API keys listed in $KEYS (one per line, "key" or "key tenant");
-- MODE=health reads /health (the baseline), MODE=sim posts a small simulation (1 asset, 10 annual steps, 1,000 paths), MODE=me reads
-- /api/v1/auth/me. Prints one line: p50, p99 (ms), requests/s and non-2xx count.
local keys = {}
for line in io.lines(os.getenv("KEYS")) do keys[#keys + 1] = line end
local mode = os.getenv("MODE")
local sim = mode == "sim"
local i = math.random(#keys)
local body = '{"assets":[{"name":"A","weight":1,"drift":0.07,"volatility":0.15}],'
  .. '"initial_value":100000,"horizon_years":10,"steps_per_year":1,"paths":1000}'
request = function()
  if mode == "health" then return wrk.format("GET", "/health") end
  i = i % #keys + 1
  local h = { ["X-API-Key"] = keys[i] }
  if sim then
    h["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/simulations", h, body)
  end
  return wrk.format("GET", "/api/v1/auth/me", h, nil)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT p50_ms=%.2f p99_ms=%.2f rps=%.0f non2xx=%d errors=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
