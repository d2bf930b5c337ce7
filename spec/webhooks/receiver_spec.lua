-- System webhooks end to end: the emulator's Webhooks API, its signed deliveries of a live
-- flow's events to an nginx receiver (spec/webhooks/receiver) that verifies them with
-- klaviyo.webhooks.ngx_verify, retries, and the receiver refusing altered deliveries.
local cjson = require "cjson"
local socket = require "socket"
local klaviyo = require "klaviyo"
local webhooks = require "klaviyo.webhooks"
local emu = require "helpers.emulator"
local live_flow = require "helpers.live_flow"

local RECEIVER = emu.root .. "/spec/webhooks/receiver"
local SECRET = "spec-webhook-secret-" .. tostring(os.time())
local METRIC = "Placed Order"
local TOPIC = "event:klaviyo.placed_order"

local recv_url, recv_port

local function client(acct)
  return assert(klaviyo.new { base_url = emu.url, api_key = acct.private_key })
end

local function event(email, props)
  return { data = { type = "event", attributes = {
    properties = props or { item = "book" },
    metric = { data = { type = "metric", attributes = { name = METRIC } } },
    profile = { data = { type = "profile", attributes = { email = email } } } } } }
end

-- An account with the metric, a live flow on it, and a client.
local function setup_account()
  local acct = emu.account()
  emu.limits({ ["*"] = "off" }, acct)
  local c = client(acct)
  return acct, c, (live_flow(c, METRIC, "Order follow-up"))
end

-- create_webhook named `name` to `url` for `topics` (default: TOPIC), signed with `secret`
-- (default: SECRET): what c:call answers.
local function create_webhook_to(c, name, url, topics, secret)
  local data = {}
  for i, t in ipairs(topics or { TOPIC }) do data[i] = { type = "webhook-topic", id = t } end
  return c:call("create_webhook", { body = { data = { type = "webhook",
    attributes = { name = name, endpoint_url = url, secret_key = secret or SECRET },
    relationships = { ["webhook-topics"] = { data = data } } } } })
end

-- A webhook to the receiver's `path`.
local function create_webhook(c, path, topics, secret)
  return create_webhook_to(c, "orders", recv_url .. path, topics, secret)
end

local function deliveries(acct)
  local st, doc = emu.admin("GET", "webhook-deliveries", nil, { ["x-emulator-account"] = acct.account_id })
  assert.equal(200, st)
  return doc.deliveries
end

-- The account's deliveries once `n` of them have reached an outcome other than "pending".
local function wait_deliveries(acct, n, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while true do
    local list, done = deliveries(acct), 0
    for _, d in ipairs(list) do if d.outcome ~= "pending" then done = done + 1 end end
    if done >= n or socket.gettime() > deadline then return list end
    socket.sleep(0.05)
  end
end

local function received()
  local st, _, doc, raw = emu.request { url = recv_url .. "/received" }
  assert(st == 200 and doc, raw)
  return doc
end

local function post(path, headers, body)
  local st, _, doc, raw = emu.request { url = recv_url .. path, method = "POST", body = body,
    headers = headers }
  return st, doc, raw
end

-- One request written on a raw socket: `head` (the request line and header lines, without
-- the blank line) then `body`. Returns the status line (or why there is none), the answer's
-- body (read by its Content-Length) and the seconds it took.
local function raw_post(head, body, timeout)
  local t0 = socket.gettime()
  local sock = assert(socket.connect("127.0.0.1", recv_port))
  sock:settimeout(timeout or 5)
  assert(sock:send(head .. "\r\n\r\n" .. body))
  local status, err = sock:receive("*l")
  local length, line = 0, status
  while line and line ~= "" do
    length = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or length
    line = sock:receive("*l")
  end
  local answer = line and length > 0 and sock:receive(length) or ""
  sock:close()
  return status or err, answer or "", socket.gettime() - t0
end

-- A body for webhook `id` and the headers that sign it with SECRET, stamped now.
local function signed(id)
  local body = cjson.encode({ data = {}, meta = { klaviyo_webhook_id = id } })
  local ts = os.date("!%a, %d %b %Y %H:%M:%S GMT")
  return body, { "Klaviyo-Webhook-Id: " .. id, "Klaviyo-Timestamp: " .. ts,
                 "Klaviyo-Signature: " .. webhooks.sign(SECRET, body, ts) }
end

-- A new account with a webhook to the receiver's `path`, and an event by `email` (with
-- `props`) sent to it: the account's first delivery, once it has an outcome.
local function first_delivery(path, email, props)
  local acct, c = setup_account()
  assert(create_webhook(c, path))
  assert(c:call("create_event", { body = event(email, props) }))
  return wait_deliveries(acct, 1)[1]
end

describe("system webhooks", function()
  setup(function()
    local out, ports = emu.launch("webhook receiver", 1, function(p)
      return string.format("%s start --port %d --secret %s --watch-pid %s",
        RECEIVER, p[1], SECRET, emu.my_pid())
    end)
    recv_port = ports[1]
    recv_url = assert(out:match("(http://127%.0%.0%.1:%d+)"))
  end)
  teardown(function()
    if recv_port then os.execute(RECEIVER .. " stop --port " .. recv_port .. " >/dev/null 2>&1") end
  end)

  it("manages webhooks as the Webhooks API describes", function()
    local acct, c = setup_account()
    local topics = assert(c:call("get_webhook_topics", {}))
    local seen = {}
    for _, t in ipairs(topics.data) do seen[t.id] = t.type end
    assert.equal("webhook-topic", seen[TOPIC])
    assert.equal("webhook-topic", seen["event:klaviyo.sent_sms"])
    assert.equal(TOPIC, assert(c:call("get_webhook_topic", { id = TOPIC })).data.id)

    local doc = assert(create_webhook(c, "/hook"))
    local id = doc.data.id
    assert.equal("webhook", doc.data.type)
    assert.equal(recv_url, doc.data.attributes.endpoint_url) -- truncated to scheme and host
    assert.is_true(doc.data.attributes.enabled)
    assert.is_nil(doc.data.attributes.secret_key)
    assert.is_nil(cjson.encode(doc):find(SECRET, 1, true))

    local list = assert(c:call("get_webhooks", { include = { "webhook-topics" } }))
    assert.equal(1, #list.data)
    assert.equal(TOPIC, list.included[1].id)
    local one = assert(c:call("get_webhook",
      { id = id, ["fields[webhook]"] = { "name", "endpoint_url", "enabled" } }))
    assert.same({ name = "orders", endpoint_url = recv_url, enabled = true }, one.data.attributes)

    local upd = assert(c:call("update_webhook", { id = id, body = { data = { type = "webhook", id = id,
      attributes = { name = "renamed", enabled = false } } } }))
    assert.equal("renamed", upd.data.attributes.name)
    assert.is_false(upd.data.attributes.enabled)

    -- refused: a short secret, an unknown topic, an http endpoint off loopback
    local _, err = create_webhook(c, "/hook", nil, "too-short")
    assert.equal(400, err.status)
    _, err = create_webhook(c, "/hook", { "event:klaviyo.no_such_metric" })
    assert.equal(400, err.status)
    _, err = create_webhook_to(c, "x", "http://example.com/hook")
    assert.equal(400, err.status)

    -- disabled: an event sends nothing
    assert(c:call("create_event", { body = event("quiet@example.com") }))
    socket.sleep(0.3)
    assert.equal(0, #deliveries(acct))

    assert(c:call("delete_webhook", { id = id }))
    _, err = c:call("get_webhook", { id = id })
    assert.equal(404, err.status)
  end)

  it("delivers a live flow's events, signed, and the nginx receiver verifies them", function()
    local acct, c, flow_id = setup_account()
    local wh = assert(create_webhook(c, "/hook")).data
    local before = #received()
    assert(c:call("create_event", { body = event("ada@example.com") }))
    local list = wait_deliveries(acct, 1)
    assert.equal(1, #list)
    local d = list[1]
    assert.equal("delivered", d.outcome, cjson.encode(d))
    assert.equal(200, d.attempts[1].status)

    local runs = emu.flow_runs(acct)
    assert.equal(1, #runs)
    assert.equal(flow_id, runs[1].flow_id)
    assert.same({ runs[1].event_id }, d.event_ids)

    local got = received()
    assert.equal(before + 1, #got)
    local r = got[#got]
    assert.equal(wh.id, r.webhook_id)
    assert.equal(TOPIC, r.data[1].topic)
    assert.equal(runs[1].event_id, r.data[1].external_id)
    assert.equal("event", r.data[1].payload.type)
    assert.equal("book", r.data[1].payload.attributes.event_properties.item)
    assert.is_false(r.in_file)
    -- the body as sent, signed with the secret over body .. timestamp
    assert.equal(webhooks.sign(SECRET, d.body, d.headers["Klaviyo-Timestamp"]),
      d.headers["Klaviyo-Signature"])
  end)

  it("refuses a tampered body, a wrong secret, a swapped id, a replay and a missing header", function()
    local d = first_delivery("/hook", "eve@example.com")
    assert.equal("delivered", d.outcome)
    local now = os.time()
    local function headers(body, ts, secret, id)
      return { ["content-type"] = "application/json", ["Klaviyo-Webhook-Id"] = id or d.webhook_id,
               ["Klaviyo-Timestamp"] = ts, ["Klaviyo-Signature"] = webhooks.sign(secret or SECRET, body, ts) }
    end
    local fresh = os.date("!%a, %d %b %Y %H:%M:%S GMT", now)

    -- the delivery itself, sent again within the window: accepted (so the refusals below are real)
    local st = post("/hook", headers(d.body, fresh), d.body)
    assert.equal(200, st)

    local h = headers(d.body, fresh)
    local tampered = d.body:gsub("eve@", "mallory@")
    if tampered == d.body then tampered = d.body:gsub('"book"', '"bomb"') end
    assert.are_not.equal(d.body, tampered)
    local doc
    st, doc = post("/hook", h, tampered)
    assert.equal(401, st)
    assert.equal("bad_signature", doc.error)

    st, doc = post("/hook", headers(d.body, fresh, "another-secret-0123456789"), d.body)
    assert.equal(401, st)
    assert.equal("bad_signature", doc.error)

    st, doc = post("/hook", headers(d.body, fresh, nil, "01OTHERWEBHOOKID0000000000"), d.body)
    assert.equal(400, st)
    assert.equal("id_mismatch", doc.error)

    local old = os.date("!%a, %d %b %Y %H:%M:%S GMT", now - 600)
    st, doc = post("/hook", headers(d.body, old), d.body)
    assert.equal(401, st)
    assert.equal("stale_timestamp", doc.error)

    for _, name in ipairs { "Klaviyo-Signature", "Klaviyo-Timestamp", "Klaviyo-Webhook-Id" } do
      local hh = headers(d.body, fresh)
      hh[name] = nil
      st, doc = post("/hook", hh, d.body)
      assert.equal(400, st, name)
      assert.equal("missing_header", doc.error, name)
    end
    -- a header sent twice (nginx keeps both): refused
    local raw_headers = {}
    for k, v in pairs(headers(d.body, fresh)) do raw_headers[#raw_headers + 1] = k .. ": " .. v end
    local sock = assert(socket.connect("127.0.0.1", recv_port))
    sock:settimeout(5)
    assert(sock:send("POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
      table.concat(raw_headers, "\r\n") .. "\r\nklaviyo-signature: " .. ("0"):rep(64) ..
      "\r\nContent-Length: " .. #d.body .. "\r\n\r\n" .. d.body))
    local line = assert(sock:receive("*l"))
    local rest = sock:receive("*a") or ""
    sock:close()
    assert.equal("HTTP/1.1 400 Bad Request", line)
    assert.truthy(rest:find('"duplicate_header"', 1, true))

    -- over the receiver's max_body, in memory or in nginx's file
    for _, path in ipairs { "/hook-tiny", "/hook-tiny-file" } do
      st, doc = post(path, headers(d.body, fresh), d.body)
      assert.equal(413, st, path)
      assert.equal("body_too_large", doc.error, path)
    end

    -- no answer holds the secret
    assert.is_nil(tostring(doc.detail):find(SECRET, 1, true))
  end)

  it("sees the Klaviyo headers, and a second copy of one, past nginx's first 100 headers", function()
    local pad = {}
    for i = 1, 100 do pad[i] = "X-Pad-" .. i .. ": " .. i end
    local body, kh = signed("W-MANY-HEADERS")
    local head = "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: " .. #body
    local line, rest = raw_post(head .. "\r\n" .. table.concat(pad, "\r\n") .. "\r\n" ..
      table.concat(kh, "\r\n"), body)
    assert.equal("HTTP/1.1 200 OK", line, rest)

    line, rest = raw_post(head .. "\r\n" .. table.concat(kh, "\r\n") .. "\r\n" ..
      table.concat(pad, "\r\n") .. "\r\nKlaviyo-Signature: " .. ("0"):rep(64), body)
    assert.equal("HTTP/1.1 400 Bad Request", line)
    assert.truthy(rest:find('"duplicate_header"', 1, true), rest)
  end)

  it("refuses a body announced over max_body before nginx reads it", function()
    local body, kh = signed("W-BIG")
    -- 100 MB announced, 1 kB sent: the answer comes without waiting for the rest
    local line, rest, took = raw_post("POST /hook-big HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Content-Length: 100000000\r\n" .. table.concat(kh, "\r\n"), body .. ("x"):rep(1000), 3)
    assert.equal("HTTP/1.1 413 Request Entity Too Large", line)
    assert.truthy(rest:find('"body_too_large"', 1, true), rest)
    assert.is_true(took < 2, tostring(took))
    -- the genuine delivery, announced at its size, still goes through
    line, rest = raw_post("POST /hook-big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
      "Content-Length: " .. #body .. "\r\n" .. table.concat(kh, "\r\n"), body)
    assert.equal("HTTP/1.1 200 OK", line, rest)
    -- a chunked body announces no length: it is measured once read, in memory or in nginx's file
    local big = body .. (" "):rep(300)
    for _, path in ipairs { "/hook-tiny", "/hook-tiny-file" } do
      line, rest = raw_post("POST " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
        "Transfer-Encoding: chunked\r\n" .. table.concat(kh, "\r\n"),
        string.format("%x\r\n%s\r\n0\r\n\r\n", #big, big))
      assert.equal("HTTP/1.1 413 Request Entity Too Large", line, path)
      assert.truthy(rest:find('"body_too_large"', 1, true), rest)
    end
  end)

  it("verifies a delivery nginx buffered to a file", function()
    local d = first_delivery("/hook-file", "big@example.com", { notes = string.rep("x", 4000) })
    assert.equal("delivered", d.outcome, cjson.encode(d))
    local got = received()
    local r = got[#got]
    assert.equal("/hook-file", r.uri)
    assert.is_true(r.in_file)
    assert.equal(4000, #r.data[1].payload.attributes.event_properties.notes)
  end)

  it("sends the events of one bulk job together, and skips endpoints off loopback", function()
    local acct, c = setup_account()
    assert(create_webhook(c, "/hook"))
    local evs = {}
    for i = 1, 3 do
      evs[i] = { type = "event", attributes = { properties = { i = i }, unique_id = "bulk-" .. i,
        metric = { data = { type = "metric", attributes = { name = METRIC } } } } }
    end
    assert(c:call("bulk_create_events", { body = { data = { type = "event-bulk-create-job",
      attributes = { ["events-bulk-create"] = { data = { { type = "event-bulk-create", attributes = {
        profile = { data = { type = "profile", attributes = { email = "bulk@example.com" } } },
        events = { data = evs } } } } } } } } }))
    emu.admin("GET", "jobs?settle=1&account=" .. acct.account_id)
    local list = wait_deliveries(acct, 1)
    assert.equal(1, #list)
    assert.equal("delivered", list[1].outcome)
    assert.equal(3, #list[1].event_ids)
    local got = received()
    assert.equal(3, #got[#got].data)

    -- https off loopback: accepted, recorded, never contacted
    local acct2, c2 = setup_account()
    local function make(url) return create_webhook_to(c2, "far", url) end
    assert(make("https://hooks.example.com/klaviyo"))
    local _, err = make("http://127.0.0.1:1/a b")
    assert.equal(400, err.status)
    _, err = make("http://127.0.0.1:1/a\r\nX-Injected: 1")
    assert.equal(400, err.status)
    assert(c2:call("create_event", { body = event("far@example.com") }))
    local d = wait_deliveries(acct2, 1)[1]
    assert.equal("skipped", d.outcome)
    assert.truthy(d.attempts[1].error:find("loopback", 1, true))
  end)

  it("retries a failed delivery with backoff, and gives up after the last attempt", function()
    local d = first_delivery("/hook-flaky", "flaky@example.com")
    assert.equal("delivered", d.outcome, cjson.encode(d))
    assert.equal(3, #d.attempts)
    assert.equal(500, d.attempts[1].status)
    assert.equal(500, d.attempts[2].status)
    assert.equal(200, d.attempts[3].status)

    local acct2, c2 = setup_account()
    local dead = emu.free_port()
    assert(create_webhook_to(c2, "dead", "http://127.0.0.1:" .. dead .. "/hook"))
    assert(c2:call("create_event", { body = event("nobody@example.com") }))
    local d2 = wait_deliveries(acct2, 1, 15)[1]
    assert.equal("failed", d2.outcome, cjson.encode(d2))
    assert.equal(4, #d2.attempts)
    assert.truthy(d2.attempts[1].error:find("connect", 1, true))
  end)
end)
