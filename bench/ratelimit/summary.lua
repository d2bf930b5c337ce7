-- bench/ratelimit summary: reads accept times (files given), prints accepted per minute over
-- the run, in the last full minute (steady state: the first minute also holds the burst
-- allowance of a fresh window), and the most and fewest in any 60 s window of the run.
--   lua summary.lua START SECONDS FILE...
local start, seconds = tonumber(arg[1]), tonumber(arg[2])
local t = {}
for i = 3, #arg do
  for line in io.lines(arg[i]) do t[#t + 1] = tonumber(line) end
end
table.sort(t)
local function count(a, b) -- accepted in [a, b)
  local n = 0
  for _, x in ipairs(t) do if x >= a and x < b then n = n + 1 end end
  return n
end
local hi, lo = 0, math.huge
for s = 0, seconds - 60, 1 do
  local n = count(start + s, start + s + 60)
  if n > hi then hi = n end
  if n < lo then lo = n end
end
-- a call started before the end may wait past it for the next window: counted only in `#t`
local over_run = count(start, start + seconds) / (seconds / 60)
local last = count(start + seconds - 60, start + seconds)
print(("%d accepted (%d in the run); per minute over the run %.0f; last full minute %d; " ..
  "any 60 s window %d..%d"):format(#t, count(start, start + seconds), over_run, last, lo, hi))
