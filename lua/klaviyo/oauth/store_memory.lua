-- klaviyo.oauth token store in this process's memory (one process, one client or several).
local M = {}
local mt = { __index = M, __tostring = function() return "klaviyo.oauth memory store" end }

function M.new(tokens) return setmetatable({ t = tokens, held = false }, mt) end
function M:get() return self.t end
function M:set(t) self.t = t; return true end
function M:lock() if self.held then return false end self.held = true; return true end
function M:unlock() self.held = false; return true end

return M
