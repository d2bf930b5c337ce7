-- Queued background jobs of an account (bulk event creates, bulk profile imports): a job
-- waits in a per-account queue and runs shortly after under nginx (a timer), or as soon
-- as something reads the state (settle), so reads never see a half-done job.
local state = require "emulator.state"

local ipairs, rawget = ipairs, rawget

local _M = {}

-- How long a queued job waits before the timer runs it.
_M.DELAY = 0.05

--- Runs every job queued in acct[queue] now, with run(acct, job), emptying the queue.
function _M.settle(acct, queue, run)
  local pending = acct[queue]
  if not pending or #pending == 0 then return end
  acct[queue] = {}
  for _, job in ipairs(pending) do run(acct, job) end
end

--- Queues `job` in acct[queue]; under nginx, settle(acct) runs after DELAY unless the
-- emulator state was reset in between (the job belongs to a state that is gone).
function _M.schedule(acct, queue, job, settle)
  local pending = acct[queue] or {}
  acct[queue] = pending
  pending[#pending + 1] = job
  local generation = state.generation
  local ngx = rawget(_G, "ngx")
  if ngx and ngx.timer then
    ngx.timer.at(_M.DELAY, function(premature)
      if premature or state.generation ~= generation then return end
      settle(acct)
    end)
  end
end

return _M
