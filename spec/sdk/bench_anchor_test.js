'use strict';
// bench/node/sdk-create-event.js is the anchor other benchmarks compare against, so its counts
// must be true: every event it reports accepted or throttled is checked against what the
// emulator recorded for the run's account. No timing is asserted (speed lives in bench/).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { execFile } = require('child_process');
const { promisify } = require('util');
const emu = require('./emulator');

const BENCH = path.join(emu.ROOT, 'bench', 'node', 'sdk-create-event.js');
let server;

before(async () => { server = await emu.start(); });
after(() => server && server.stop());

async function bench(args) {
  const { stdout } = await promisify(execFile)('node', [BENCH, '--url', server.url, ...args], { encoding: 'utf8' });
  return stdout;
}

// What the emulator answered create_event for one account: status -> count.
async function answers(accountId) {
  const doc = await emu.admin(server.url, 'GET', `requests?account=${accountId}&operation=create_event`);
  const out = {};
  for (const r of doc.requests) out[r.status] = (out[r.status] || 0) + 1;
  return out;
}

test('every event is sent through the SDK and accepted, one per unique_id', async () => {
  const acct = await emu.admin(server.url, 'POST', 'accounts', {});
  const out = JSON.parse(await bench(['--key', acct.private_key, '--events', '12', '--concurrency', '3', '--json']));
  assert.equal(out.events, 12);
  assert.equal(out.accepted, 12);
  assert.deepEqual(out.failed, {});
  assert.equal(out.received_429, 0);
  assert.ok(out.events_per_s > 0);
  assert.deepEqual(await answers(acct.account_id), { 202: 12 });
});

test('429s are counted as received, retried by the SDK, and final failures reported', async () => {
  const acct = await emu.admin(server.url, 'POST', 'accounts', {});
  // Two events per second: four concurrent senders must be throttled.
  await emu.admin(server.url, 'POST', 'limits', { account: acct.account_id, create_event: { burst: 2, steady: 1000 } });
  const out = JSON.parse(await bench(['--key', acct.private_key, '--events', '8', '--concurrency', '4', '--json']));
  const seen = await answers(acct.account_id);
  assert.ok(out.received_429 > 0, 'no 429 received at 2 events/s with 4 senders');
  assert.equal(out.received_429, seen[429], 'every 429 the emulator sent was counted once');
  assert.equal(out.accepted, seen[202]);
  assert.equal(out.accepted + (out.failed['429'] || 0), 8);
  assert.ok(seen[429] > (out.failed['429'] || 0), 'the SDK retried some 429s');
});

test('the text output names the SDK, the rate and the 429s; bad usage exits 2', async () => {
  const acct = await emu.admin(server.url, 'POST', 'accounts', {});
  const line = await bench(['--key', acct.private_key, '--events', '3']);
  assert.match(line, /^klaviyo-api \d+\.\d+\.\d+ create_event: 3\/3 accepted in [\d.]+ s, [\d.]+ events\/s, concurrency 1, 429s received 0, failed none$/m);
  await assert.rejects(bench(['--events', '3', '--seconds', '1']), (e) => e.code === 2 && /exactly one of/.test(e.stderr));
});

test('without --key it creates its own account through the admin API', async () => {
  const out = JSON.parse(await bench(['--events', '2', '--json']));
  assert.equal(out.accepted, 2);
});
