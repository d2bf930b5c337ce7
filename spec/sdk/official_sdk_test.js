'use strict';
// Klaviyo's official Node SDK (npm klaviyo-api) against the emulator: what a user of the SDK
// does on day one must work unchanged, with only the base path pointed at the emulator.
// The SDK pins its own revision (a constant in its apis.js) and sends bodies as
// `Content-Type: application/json` (axios' default), both of which the emulator must accept.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const emu = require('./emulator');

const klaviyo = emu.requireTool('klaviyo-api');
const SDK_VERSION = emu.requireTool('klaviyo-api/package.json').version;

let server;
let account;
let api; // one instance per API group, all on the emulator's base path
const EMAIL = `sdk-${process.pid}@example.com`;

// The SDK's API classes take the base path as a property (`basePath`), default
// https://a.klaviyo.com; the session carries the key and the SDK's retry policy.
function apis(url, key) {
  const session = new klaviyo.ApiKeySession(key);
  const make = (Cls) => Object.assign(new Cls(session), { basePath: url });
  return {
    events: make(klaviyo.EventsApi),
    profiles: make(klaviyo.ProfilesApi),
    lists: make(klaviyo.ListsApi),
    flows: make(klaviyo.FlowsApi),
    metrics: make(klaviyo.MetricsApi),
  };
}

// Runs an SDK call and turns an HTTP failure into an error showing Klaviyo's error document.
async function call(promise) {
  try {
    return await promise;
  } catch (e) {
    throw emu.explain(e);
  }
}

before(async () => {
  server = await emu.start();
  account = await emu.admin(server.url, 'POST', 'accounts', {});
  assert.match(account.private_key, /^pk_/);
  // get_metrics' own limits (10/s, 150/m) for this account, whatever global overrides an
  // earlier suite left on a shared emulator: the first test reads the RateLimit-* headers.
  await emu.admin(server.url, 'POST', 'limits', { account: account.account_id, get_metrics: { burst: 10, steady: 150 } });
  api = apis(server.url, account.private_key);
});

after(() => server && server.stop());

test(`the SDK (klaviyo-api ${SDK_VERSION}) sends its pinned revision and the emulator accepts it`, async (t) => {
  // The SDK's pinned revision is not exported: its session stamps it on every request.
  const stamped = { headers: {} };
  new klaviyo.ApiKeySession(account.private_key).applyToRequest(stamped);
  assert.match(stamped.headers.revision, /^\d{4}-\d{2}-\d{2}$/);
  const { response } = await call(api.metrics.getMetrics());
  assert.equal(response.status, 200);
  // What the emulator received (its request log) is what Klaviyo would see.
  const [got] = (await emu.admin(server.url, 'GET',
    `requests?account=${account.account_id}&operation=get_metrics&limit=1`)).requests;
  const sent = got.headers;
  assert.equal(sent.revision, stamped.headers.revision);
  assert.match(sent.authorization, /^Klaviyo-API-Key /);
  assert.equal(got.status, 200);
  // A RateLimit-* header shows the answer came from the emulator's real pipeline.
  assert.ok(response.headers['ratelimit-limit'], 'no RateLimit-Limit header on the answer');
  t.diagnostic(`klaviyo-api ${SDK_VERSION} sends revision ${sent.revision}: accepted (HTTP ${response.status})`);
});

test('create an event (metric created on first use, profile upserted)', async () => {
  const { response } = await call(api.events.createEvent({
    data: {
      type: 'event',
      attributes: {
        properties: { ProductName: 'Winnie the Pooh', Price: 9.99 },
        value: 9.99,
        uniqueId: `order-${process.pid}`,
        metric: { data: { type: 'metric', attributes: { name: 'Placed Order' } } },
        profile: { data: { type: 'profile', attributes: { email: EMAIL } } },
      },
    },
  }));
  assert.equal(response.status, 202);
  // On the wire: the SDK's camelCase `uniqueId` becomes `unique_id` (its serializer maps it),
  // and the body goes as axios' default `application/json`, which Klaviyo (so the emulator)
  // accepts beside `application/vnd.api+json`.
  const [sent] = (await emu.admin(server.url, 'GET',
    `requests?account=${account.account_id}&operation=create_event&limit=1`)).requests;
  assert.equal(JSON.parse(sent.request_body).data.attributes.unique_id, `order-${process.pid}`);
  assert.equal(sent.headers['content-type'], 'application/json');
  // get_metrics filters on integration.name and integration.category only (not on name)
  const metrics = await call(api.metrics.getMetrics({ filter: 'equals(integration.name,"API")' }));
  assert.equal(metrics.body.data.length, 1);
  assert.equal(metrics.body.data[0].attributes.name, 'Placed Order');
  const events = await call(api.events.getEvents({ filter: `equals(metric_id,"${metrics.body.data[0].id}")` }));
  assert.equal(events.body.data.length, 1);
  const event = events.body.data[0];
  assert.equal(event.attributes.eventProperties.ProductName, 'Winnie the Pooh'); // event_properties
  assert.ok(event.attributes.datetime instanceof Date && !Number.isNaN(event.attributes.datetime.getTime()),
    'the SDK parses datetime into a Date');
  // The profile the event upserted is findable by its email through the SDK's filter.
  const profiles = await call(api.profiles.getProfiles({ filter: `equals(email,"${EMAIL}")` }));
  assert.equal(profiles.body.data.length, 1);
  assert.equal(event.relationships.profile.data.id, profiles.body.data[0].id);
});

let profileId;
test('create a profile, then read it back', async () => {
  const email = `profile-${process.pid}@example.com`;
  const created = await call(api.profiles.createProfile({
    data: { type: 'profile', attributes: { email, firstName: 'Sarah', properties: { plan: 'gold' } } },
  }));
  assert.equal(created.response.status, 201);
  profileId = created.body.data.id;
  assert.ok(profileId);
  const got = await call(api.profiles.getProfile(profileId));
  assert.equal(got.response.status, 200);
  assert.equal(got.body.data.id, profileId);
  assert.equal(got.body.data.attributes.email, email);
  assert.equal(got.body.data.attributes.firstName, 'Sarah'); // the SDK maps first_name
  assert.equal(got.body.data.attributes.properties.plan, 'gold');
  // And the SDK surfaces Klaviyo's 409 for a duplicate with the existing profile's id.
  await assert.rejects(api.profiles.createProfile({ data: { type: 'profile', attributes: { email } } }),
    (e) => e.response && e.response.status === 409 &&
      e.response.data.errors[0].code === 'duplicate_profile' &&
      e.response.data.errors[0].meta.duplicate_profile_id === profileId);
});

let listId;
test('pages 25 profiles ten at a time, passing the whole links.next as pageCursor (the SDK\'s README)', async () => {
  // a fresh account, so that the 25 are all there is
  const own = await emu.admin(server.url, 'POST', 'accounts', {});
  const sdk = apis(server.url, own.private_key);
  const made = [];
  for (let i = 0; i < 25; i += 1) {
    const { body } = await call(sdk.profiles.createProfile({
      data: { type: 'profile', attributes: { email: `page-${i}-${process.pid}@example.com` } },
    }));
    made.push(body.data.id);
  }
  const seen = [];
  const sizes = [];
  let cursor;
  for (let n = 0; n < 10; n += 1) {
    const { body } = await call(sdk.profiles.getProfiles({ pageSize: 10, pageCursor: cursor }));
    sizes.push(body.data.length);
    seen.push(...body.data.map((p) => p.id));
    cursor = body.links.next;
    if (!cursor) break;
    assert.match(cursor, /^http:\/\//); // the emulator over plain http, as users run it
  }
  assert.deepEqual(sizes, [10, 10, 5]);
  assert.deepEqual([...seen].sort(), [...made].sort());
  // what went on the wire: the whole URL as page[cursor], as the SDK's README shows
  const sent = (await emu.admin(server.url, 'GET',
    `requests?account=${own.account_id}&operation=get_profiles&limit=3`)).requests;
  assert.equal(sent.length, 3);
  const cursors = sent.map((r) => new URLSearchParams(r.query || '').get('page[cursor]')).filter(Boolean);
  assert.equal(cursors.length, 2);
  for (const c of cursors) assert.match(c, /^http:\/\/.*\/api\/profiles\?/);
});

test('create a list and add the profile to it', async () => {
  assert.ok(profileId, 'needs the profile from the previous test');
  const created = await call(api.lists.createList({ data: { type: 'list', attributes: { name: `SDK list ${process.pid}` } } }));
  assert.equal(created.response.status, 201);
  listId = created.body.data.id;
  const added = await call(api.lists.addProfilesToList(listId, { data: [{ type: 'profile', id: profileId }] }));
  assert.equal(added.response.status, 204);
  const members = await call(api.lists.getProfilesForList(listId));
  assert.deepEqual(members.body.data.map((p) => p.id), [profileId]);
});

test('read flows: a flow created through the SDK is listed and readable', async () => {
  assert.ok(listId, 'needs the list from the previous test');
  const created = await call(api.flows.createFlow({
    data: {
      type: 'flow',
      attributes: {
        name: `SDK welcome ${process.pid}`,
        definition: {
          triggers: [{ type: 'list', id: listId }],
          actions: [{ temporaryId: 'delay-1', type: 'time-delay', data: { unit: 'days', value: 1 } }],
          entryActionId: 'delay-1',
        },
      },
    },
  }));
  assert.equal(created.response.status, 201);
  const flowId = created.body.data.id;
  const all = await call(api.flows.getFlows());
  assert.equal(all.response.status, 200);
  assert.ok(all.body.data.some((f) => f.id === flowId), `flow ${flowId} missing from get_flows`);
  const one = await call(api.flows.getFlow(flowId));
  assert.equal(one.body.data.attributes.name, `SDK welcome ${process.pid}`);
  assert.equal(one.body.data.attributes.status, 'draft');
  const drafts = await call(api.flows.getFlows({ filter: 'equals(status,"draft")' }));
  assert.ok(drafts.body.data.every((f) => f.attributes.status === 'draft'));
});

test('a list flow set live through the SDK fires once when the SDK adds a profile to the list', async () => {
  const list = await call(api.lists.createList({ data: { type: 'list', attributes: { name: `SDK live ${process.pid}` } } }));
  const listIdLive = list.body.data.id;
  const flow = await call(api.flows.createFlow({
    data: {
      type: 'flow',
      attributes: {
        name: `SDK live flow ${process.pid}`,
        definition: {
          triggers: [{ type: 'list', id: listIdLive }],
          actions: [{ temporaryId: 'd', type: 'time-delay', data: { unit: 'hours', value: 2 } }],
          entryActionId: 'd',
        },
      },
    },
  }));
  const flowId = flow.body.data.id;
  const updated = await call(api.flows.updateFlow(flowId, { data: { type: 'flow', id: flowId, attributes: { status: 'live' } } }));
  assert.equal(updated.body.data.attributes.status, 'live');
  const profile = await call(api.profiles.createProfile({
    data: { type: 'profile', attributes: { email: `live-${process.pid}@example.com` } },
  }));
  await call(api.lists.addProfilesToList(listIdLive, { data: [{ type: 'profile', id: profile.body.data.id }] }));
  const runs = await emu.admin(server.url, 'GET', `flow-runs?account=${account.account_id}`);
  const mine = runs.flow_runs.filter((r) => r.flow_id === flowId);
  assert.equal(mine.length, 1);
  assert.equal(mine[0].profile_id, profile.body.data.id);
  assert.equal(mine[0].trigger, 'list');
});

test('everything the SDK sent and the emulator answered above satisfies the spec (contract check --url)', async () => {
  const { execFile } = require('child_process');
  const cli = require('path').join(emu.ROOT, 'tools', 'contract-check.js');
  const { stdout } = await require('util').promisify(execFile)('node',
    [cli, '--url', server.url, '--account', account.account_id], { encoding: 'utf8' });
  const [, passed, failed] = stdout.trim().split('\n').pop().match(/^(\d+) passed, (\d+) failed$/);
  assert.equal(Number(failed), 0, stdout);
  assert.ok(Number(passed) >= 15, `only ${passed} bodies checked:\n${stdout}`);
});
