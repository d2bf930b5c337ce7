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
  api = apis(server.url, account.private_key);
});

after(() => server && server.stop());

test(`the SDK (klaviyo-api ${SDK_VERSION}) sends its pinned revision and the emulator accepts it`, async () => {
  // The SDK's pinned revision is not exported; read it off the wire the way Klaviyo sees it.
  let seen;
  const session = new klaviyo.ApiKeySession(account.private_key);
  session.applyToRequest(seen = { headers: {} });
  assert.match(seen.headers.revision, /^\d{4}-\d{2}-\d{2}$/);
  const { response } = await call(api.metrics.getMetrics());
  assert.equal(response.status, 200);
  const sent = response.config.headers;
  assert.equal(sent.revision, seen.headers.revision);
  assert.equal(sent.Authorization, `Klaviyo-API-Key ${account.private_key}`);
  // A RateLimit-* header shows the answer came from the emulator's real pipeline.
  assert.ok(response.headers['ratelimit-limit'], 'no RateLimit-Limit header on the answer');
  console.log(`# klaviyo-api ${SDK_VERSION} sends revision ${sent.revision}: accepted (HTTP ${response.status})`);
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
  // The SDK's camelCase `uniqueId` must reach the wire as `unique_id` (its serializer maps it).
  const wire = JSON.parse(response.config.data);
  assert.equal(wire.data.attributes.unique_id, `order-${process.pid}`);
  const metrics = await call(api.metrics.getMetrics({ filter: 'equals(name,"Placed Order")' }));
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
