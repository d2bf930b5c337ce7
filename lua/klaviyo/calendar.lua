--- klaviyo.calendar: proleptic Gregorian dates as days since 1970-01-01 and back (H. Hinnant's
-- days_from_civil and civil_from_days), in pure arithmetic so the local time zone never leaks
-- in (os.time would apply it). Loads nothing: the emulator's nginx, which has no C core, uses
-- it too.
-- @module klaviyo.calendar
local floor = math.floor

local _M = {}

--- Days since 1970-01-01 of y-m-d.
---@param y integer year
---@param m integer month, 1-12
---@param d integer day of the month
---@return integer days
function _M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local MDAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- Is y-m-d a day of the calendar (February 29 only in leap years)?
---@param y integer year
---@param m integer month
---@param d integer day of the month
---@return boolean
function _M.is_date(y, m, d)
  if m < 1 or m > 12 or d < 1 or d > MDAYS[m] then return false end
  if m == 2 and d == 29 then return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) end
  return true
end

--- The date of day z since 1970-01-01.
---@param z integer days
---@return integer y
---@return integer m month, 1-12
---@return integer d day of the month
function _M.civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

return _M
