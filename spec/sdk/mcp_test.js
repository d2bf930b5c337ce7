'use strict';
// The official MCP TypeScript SDK (npm @modelcontextprotocol/sdk) drives the library's MCP
// server (`klaviyo mcp`, bin/klaviyo) over stdio against the emulator: it
// initializes, lists the tools with their schemas, and runs an agent's day: a Placed Order
// tracked twice with one unique_id fires its flow once, a profile upserted, an SMS
// subscription refused without consent and accepted with it, a list joined, a flow read,
// a destructive call refused without confirm, and every write refused by a read-only server.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const emu = require('./emulator');

const { Client } = emu.requireTool('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = emu.requireTool('@modelcontextprotocol/sdk/client/stdio.js');
const { LATEST_PROTOCOL_VERSION } = emu.requireTool('@modelcontextprotocol/sdk/types.js');

const LUA = process.env.MCP_LUA || 'lua5.4';
const BUILD = process.env.MCP_LUA_BUILD || 'lua5.4';
let server;
let account;
let agent; // the SDK client on a read-write server
const clients = [];
const PID = process.pid;

async function connect(readOnly) {
  const args = [path.join(emu.ROOT, 'bin', 'klaviyo'), 'mcp', '--base-url', server.url];
  if (readOnly) args.push('--read-only');
  const transport = new StdioClientTransport({
    command: LUA,
    args,
    env: {
      PATH: process.env.PATH,
      KLAVIYO_API_KEY: account.private_key,
      LUA_PATH: `${emu.ROOT}/lua/?.lua;${emu.ROOT}/lua/?/init.lua;;`,
      LUA_CPATH: `${emu.ROOT}/build/${BUILD}/?.so;;`,
    },
    stderr: 'inherit',
  });
  const client = new Client({ name: 'mcp-spec', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

// Calls a tool; returns {error, text, value} (value: the decoded JSON of a success).
const seen = []; // every tool answer's text, to show the key never appears in one
async function tool(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  const text = res.content.map((c) => c.text).join('');
  seen.push(text);
  return { error: res.isError === true, text, value: res.isError ? undefined : JSON.parse(text) };
}

async function ok(client, name, args) {
  const r = await tool(client, name, args);
  assert.equal(r.error, false, `${name} failed: ${r.text}`);
  return r.value;
}

async function requests() {
  return (await emu.admin(server.url, 'GET', `requests?account=${account.account_id}`)).requests;
}

before(async () => {
  server = await emu.start();
  account = await emu.admin(server.url, 'POST', 'accounts', {});
  agent = await connect(false);
});

after(async () => {
  for (const c of clients) await c.close();
  if (server) server.stop();
});

test(`initialize: the SDK (protocol ${LATEST_PROTOCOL_VERSION}) and the server agree`, async () => {
  assert.equal(agent.getServerVersion().name, 'lua-klaviyo');
  assert.deepEqual(agent.getServerCapabilities().tools, { listChanged: false });
  await agent.ping();
});

test('tools/list: every tool with an object schema and the four annotations', async () => {
  const { tools } = await agent.listTools();
  const names = tools.map((t) => t.name).sort();
  for (const want of ['track_event', 'get_profile', 'upsert_profile', 'subscribe', 'unsubscribe',
    'add_to_list', 'remove_from_list', 'list_flows', 'get_flow', 'set_flow_status', 'find_metric',
    'flow_report', 'describe_operation', 'call_operation']) {
    assert.ok(names.includes(want), `${want} missing from ${names}`);
  }
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', t.name);
    for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']) {
      assert.equal(typeof t.annotations[hint], 'boolean', `${t.name} ${hint}`);
    }
  }
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  assert.equal(byName.set_flow_status.annotations.destructiveHint, true);
  assert.equal(byName.get_flow.annotations.readOnlyHint, true);
  assert.deepEqual(byName.track_event.inputSchema.required, ['metric', 'profile']);
  // describe_operation: the params schema derived from the operation table
  const d = await ok(agent, 'describe_operation', { operation: 'get_profiles' });
  assert.equal(d.method, 'GET');
  assert.equal(d.params.properties['page[size]'].type, 'integer');
  assert.equal(d.params.properties['page[size]'].maximum, 100);
});

let flowId;
test('a Placed Order tracked twice with its unique_id fires its live flow once', async () => {
  // the metric exists after its first event; a flow on it is then created and set live
  await ok(agent, 'track_event', { metric: 'Placed Order', profile: { email: `seed-${PID}@example.com` } });
  const metric = await ok(agent, 'find_metric', { name: 'Placed Order' });
  const created = await ok(agent, 'call_operation', {
    operation: 'create_flow',
    params: { body: { data: { type: 'flow', attributes: { name: `MCP order flow ${PID}`, definition: {
      triggers: [{ type: 'metric', id: metric.id }],
      actions: [{ temporary_id: 'd', type: 'time-delay', data: { unit: 'days', value: 1 } }],
      entry_action_id: 'd' } } } } },
  });
  flowId = created.document.data.id;
  const refused = await tool(agent, 'set_flow_status', { id: flowId, status: 'live' });
  assert.equal(refused.error, true);
  assert.match(refused.text, /confirm/);
  const live = await ok(agent, 'set_flow_status', { id: flowId, status: 'live', confirm: true });
  assert.equal(live.status, 'live');
  const order = { metric: 'Placed Order', profile: { email: `buyer-${PID}@example.com` }, value: 42.5 };
  const first = await ok(agent, 'track_event', order);
  assert.match(first.unique_id, /\S/);
  await ok(agent, 'track_event', { ...order, unique_id: first.unique_id });
  const runs = (await emu.admin(server.url, 'GET', `flow-runs?account=${account.account_id}`)).flow_runs;
  assert.equal(runs.filter((r) => r.flow_id === flowId).length, 1);
});

let profileId;
test('upsert a profile, then find it by email', async () => {
  const up = await ok(agent, 'upsert_profile', { email: `ann-${PID}@example.com`, first_name: 'Ann' });
  assert.equal(up.created, true);
  profileId = up.profile.id;
  const again = await ok(agent, 'upsert_profile', { email: `ann-${PID}@example.com`, last_name: 'Lee' });
  assert.equal(again.created, false);
  assert.equal(again.profile.id, profileId);
  const got = await ok(agent, 'get_profile', { email: `ann-${PID}@example.com` });
  assert.equal(got.first_name, 'Ann');
  const byName = await tool(agent, 'get_profile', {});
  assert.equal(byName.error, true);
});

test('subscribe a phone number: refused without an opt-in record, accepted with one', async () => {
  const before = (await requests()).length;
  const phone = '+15005550006';
  const refused = await tool(agent, 'subscribe', { phone_number: phone });
  assert.equal(refused.error, true);
  assert.match(refused.text, /consent/i);
  assert.equal((await requests()).length, before, 'a refused subscription sent a request');
  const done = await ok(agent, 'subscribe', {
    phone_number: phone, sms_consent: { consented_at: new Date().toISOString(), source: 'checkout checkbox' },
  });
  assert.equal(done.subscribed, true);
  const [sent] = (await emu.admin(server.url, 'GET',
    `requests?account=${account.account_id}&operation=bulk_subscribe_profiles&limit=1`)).requests;
  assert.ok(sent && sent.status === 202, `bulk_subscribe_profiles answered ${sent && sent.status}`);
});

test('add a profile to a list; removing needs confirm', async () => {
  const list = await ok(agent, 'call_operation', {
    operation: 'create_list', params: { body: { data: { type: 'list', attributes: { name: `MCP ${PID}` } } } },
  });
  const listId = list.document.data.id;
  const added = await ok(agent, 'add_to_list', { list_id: listId, profile_ids: [profileId] });
  assert.equal(added.added, 1);
  const members = await ok(agent, 'call_operation', { operation: 'get_profiles_for_list', params: { id: listId } });
  assert.deepEqual(members.document.data.map((p) => p.id), [profileId]);
  const refused = await tool(agent, 'remove_from_list', { list_id: listId, profile_ids: [profileId] });
  assert.equal(refused.error, true);
  assert.match(refused.text, /confirm/);
  const delRefused = await tool(agent, 'call_operation', { operation: 'delete_list', params: { id: listId } });
  assert.equal(delRefused.error, true);
  assert.match(delRefused.text, /confirm/);
});

test('read a flow and list flows', async () => {
  const flow = await ok(agent, 'get_flow', { id: flowId });
  assert.equal(flow.name, `MCP order flow ${PID}`);
  assert.equal(flow.status, 'live');
  const { flows } = await ok(agent, 'list_flows', { status: 'live' });
  assert.ok(flows.some((f) => f.id === flowId));
});

test('flow_report sends query_flow_values for the flow (the emulator answers 501: not emulated)', async () => {
  const metric = await ok(agent, 'find_metric', { name: 'Placed Order' });
  const r = await tool(agent, 'flow_report', { conversion_metric_id: metric.id, flow_id: flowId });
  assert.equal(r.error, true);
  assert.match(r.text, /query_flow_values: HTTP 501/);
  const [sent] = (await emu.admin(server.url, 'GET',
    `requests?account=${account.account_id}&operation=query_flow_values&limit=1`)).requests;
  const attrs = JSON.parse(sent.request_body).data.attributes;
  assert.equal(attrs.conversion_metric_id, metric.id);
  assert.equal(attrs.filter, `equals(flow_id,"${flowId}")`);
  assert.deepEqual(attrs.timeframe, { key: 'last_30_days' });
});

test('wrong argument types and unknown operations are tool errors saying what to change', async () => {
  const bad = await tool(agent, 'get_flow', { id: 7 });
  assert.equal(bad.error, true);
  assert.match(bad.text, /\/id: must be string/);
  const unknown = await tool(agent, 'call_operation', { operation: 'get_nothing' });
  assert.equal(unknown.error, true);
  assert.match(unknown.text, /unknown operation get_nothing/);
  const badParam = await tool(agent, 'call_operation', { operation: 'get_profiles', params: { 'page[size]': 500 } });
  assert.equal(badParam.error, true);
  assert.match(badParam.text, /page\[size\]: must be at most 100/);
});

test('read-only: only reads are listed and every write is refused with nothing sent', async () => {
  const ro = await connect(true);
  const { tools } = await ro.listTools();
  for (const t of tools) assert.equal(t.annotations.readOnlyHint, true, `${t.name} listed read-only`);
  assert.ok(!tools.some((t) => t.name === 'track_event'));
  const before = (await requests()).length;
  const writes = [
    ['track_event', { metric: 'Placed Order', profile: { email: `ro-${PID}@example.com` } }],
    ['upsert_profile', { email: `ro-${PID}@example.com` }],
    ['subscribe', { email: `ro-${PID}@example.com` }],
    ['add_to_list', { list_id: 'x', profile_ids: [profileId] }],
    ['set_flow_status', { id: flowId, status: 'draft', confirm: true }],
    ['call_operation', { operation: 'create_list', params: { body: { data: { type: 'list', attributes: { name: 'no' } } } } }],
  ];
  for (const [name, args] of writes) {
    const r = await tool(ro, name, args);
    assert.equal(r.error, true, `${name} accepted by a read-only server`);
    assert.match(r.text, /read-only/);
  }
  assert.equal((await requests()).length, before, 'a refused write reached the emulator');
  const flow = await ok(ro, 'get_flow', { id: flowId });
  assert.equal(flow.status, 'live');
  const listed = await ok(ro, 'call_operation', { operation: 'get_flows', params: { filter: 'equals(status,"live")' } });
  assert.ok(listed.document.data.some((f) => f.id === flowId));
});

test('the API key appears in no tool answer', () => {
  assert.ok(seen.length > 20);
  for (const text of seen) assert.ok(!text.includes(account.private_key), text);
});

test('everything the server sent and the emulator answered satisfies the spec (contract check --url)', async () => {
  const { execFile } = require('child_process');
  const cli = path.join(emu.ROOT, 'tools', 'contract-check.js');
  const { stdout } = await require('util').promisify(execFile)('node',
    [cli, '--url', server.url, '--account', account.account_id], { encoding: 'utf8' });
  const [, passed, failed] = stdout.trim().split('\n').pop().match(/^(\d+) passed, (\d+) failed$/);
  assert.equal(Number(failed), 0, stdout);
  assert.ok(Number(passed) >= 15, `only ${passed} bodies checked:\n${stdout}`);
});
