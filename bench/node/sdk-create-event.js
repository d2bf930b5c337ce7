#!/usr/bin/env node
'use strict';
// Anchor for client benchmarks: create_event through Klaviyo's official Node SDK (klaviyo-api),
// as its users run it (ApiKeySession with the SDK's default retries: 429/503/504/524, 3 tries,
// exponential backoff honouring Retry-After). Other benches print their figures next to this one.
//
//   node bench/node/sdk-create-event.js --url URL [--key pk_...] [--concurrency C]
//        (--events N | --seconds S) [--retries N] [--json]
//
// --url defaults to $KLAVIYO_EMULATOR_URL. Without --key it asks the emulator's admin API for an
// account (POST /__emulator/accounts); against an emulator started with --sink (which answers
// 202 to everything) it falls back to a dummy key. Every event has its own unique_id so none is
// deduplicated. Prints events/s, the 429s received (each one, retried or not) and the events
// that failed after the SDK's retries.
const path = require('path');
const { createRequire } = require('module');

const requireTool = createRequire(path.resolve(__dirname, '..', '..', 'tools', 'node', 'package.json'));
const klaviyo = requireTool('klaviyo-api');
const axios = requireTool('axios'); // the instance the SDK calls: counting 429s happens here

const USAGE = 'usage: sdk-create-event.js --url URL [--key K] [--concurrency C] (--events N | --seconds S) [--retries N] [--json]';

function parseArgs(argv) {
  const o = { url: process.env.KLAVIYO_EMULATOR_URL, concurrency: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const num = (min) => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < min) throw new Error(`${a} must be a number >= ${min}`);
      return v;
    };
    if (a === '--url') o.url = val();
    else if (a === '--key') o.key = val();
    else if (a === '--concurrency') o.concurrency = Math.floor(num(1));
    else if (a === '--events') o.events = Math.floor(num(1));
    else if (a === '--seconds') o.seconds = num(0.001);
    else if (a === '--retries') o.retries = Math.floor(num(0));
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.url) throw new Error('--url (or KLAVIYO_EMULATOR_URL) is required');
  if ((o.events === undefined) === (o.seconds === undefined)) throw new Error('give exactly one of --events, --seconds');
  o.url = o.url.replace(/\/$/, '');
  return o;
}

async function accountKey(url) {
  const res = await fetch(`${url}/__emulator/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const text = await res.text();
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc.private_key === 'string') return doc.private_key;
  } catch (_) { /* a sink answers 202 with no body */ }
  if (res.status === 202) return 'pk_sink_benchmark';
  throw new Error(`POST ${url}/__emulator/accounts: HTTP ${res.status} ${text.slice(0, 200)}`);
}

function eventBody(worker, n) {
  return {
    data: {
      type: 'event',
      attributes: {
        properties: { bench: true, n },
        uniqueId: `bench-${process.pid}-${worker}-${n}`,
        metric: { data: { type: 'metric', attributes: { name: 'Bench Event' } } },
        profile: { data: { type: 'profile', attributes: { email: `bench-${worker}@example.com` } } },
      },
    },
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const key = o.key || await accountKey(o.url);
  const retry = o.retries === undefined ? undefined : new klaviyo.RetryWithExponentialBackoff({ numRetries: o.retries });
  const events = new klaviyo.EventsApi(new klaviyo.ApiKeySession(key, retry));
  events.basePath = o.url;

  let got429 = 0;
  axios.interceptors.response.use(undefined, (err) => {
    if (err && err.response && err.response.status === 429) got429 += 1;
    return Promise.reject(err);
  });

  let next = 0;
  let ok = 0;
  const failed = {}; // final status (or error code) -> count, after the SDK's retries
  const start = process.hrtime.bigint();
  const deadline = o.seconds === undefined ? undefined : start + BigInt(Math.round(o.seconds * 1e9));
  const more = () => (deadline === undefined ? next < o.events : process.hrtime.bigint() < deadline);

  async function worker(w) {
    while (more()) {
      const n = next++;
      try {
        await events.createEvent(eventBody(w, n));
        ok += 1;
      } catch (e) {
        const why = e.response ? String(e.response.status) : (e.code || e.message);
        failed[why] = (failed[why] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const sent = ok + Object.values(failed).reduce((a, b) => a + b, 0);
  const result = {
    bench: 'sdk-create-event', sdk: `klaviyo-api ${requireTool('klaviyo-api/package.json').version}`,
    concurrency: o.concurrency, events: sent, accepted: ok, failed, seconds: Number(secs.toFixed(3)),
    events_per_s: Number((ok / secs).toFixed(1)), received_429: got429,
  };
  if (o.json) console.log(JSON.stringify(result));
  else {
    const f = Object.entries(failed).map(([k, v]) => `${v}x${k}`).join(' ') || 'none';
    console.log(`${result.sdk} create_event: ${ok}/${sent} accepted in ${result.seconds} s, ` +
      `${result.events_per_s} events/s, concurrency ${o.concurrency}, 429s received ${got429}, failed ${f}`);
  }
  return 0; // throttled or failed events are figures of the run, not an error of the bench
}

main().then((code) => { process.exitCode = code; }, (e) => {
  console.error(`sdk-create-event: ${e.message}\n${USAGE}`);
  process.exitCode = 2;
});
