-- An event for events:create / events.build specs (not a spec itself): a placed order by
-- ann@example.com, with `extra` fields set over it.
return function(extra)
  local e = { metric = "Placed Order", profile = { email = "ann@example.com" },
              properties = { total = 10 } }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end
