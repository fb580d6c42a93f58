-- wrk script: GET /v1/proof/inclusion for a random leaf index, the load behind
-- every proof-serving figure in BENCHMARKS.md ("Inclusion proofs over HTTP").
-- benches/proofs.sh runs it; by hand:
--
--   MAX_INDEX=1270000 wrk -t1 -c32 -d15s --latency -s benches/proof.lua http://127.0.0.1:17495
--
-- Indexes are uniform in 0..MAX_INDEX (default 1270000). With that default it
-- sends exactly the requests of the script the recorded runs used (then kept
-- in /tmp as proof.lua: one `request` function with the bound written in);
-- the 10^7 runs used a bound below 10^7 the same way. wrk's LuaJIT seeds
-- math.random the same on every run, so runs repeat the same index sequence.
local max = tonumber(os.getenv("MAX_INDEX") or "") or 1270000

request = function()
  return wrk.format("GET", "/v1/proof/inclusion?index=" .. math.random(0, max))
end
