'use strict';
// Unit tests of the contract check (tools/contract-check.js, tools/node/lib/*): bodies built
// from the spec's own shapes must pass, the same bodies broken must fail, and the CLI must
// report violations and exit non-zero. Pure: no emulator.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const { Contract, check, pathPattern } = require(path.join(ROOT, 'tools/node/lib/contract'));
const { convert } = require(path.join(ROOT, 'tools/node/lib/openapi-schema'));
const Ajv = require(path.join(ROOT, 'tools/node/node_modules/ajv'));
const SPEC_FILE = path.join(ROOT, 'openapi', 'klaviyo-stable-2026-07-15.json');
const spec = JSON.parse(fs.readFileSync(SPEC_FILE, 'utf8'));
const contract = new Contract(spec);

const EVENT = () => ({
  data: {
    type: 'event',
    attributes: {
      properties: { Brand: 'Kids Book' },
      time: '2026-01-01T10:00:00+00:00',
      value: 9.99,
      unique_id: 'u-1',
      metric: { data: { type: 'metric', attributes: { name: 'Viewed Product' } } },
      profile: { data: { type: 'profile', attributes: { email: 'sarah@example.com' } } },
    },
  },
});
const ERROR_DOC = () => ({ errors: [{ id: 'e1', status: 400, code: 'invalid', title: 'Invalid input.',
  detail: 'bad', source: { pointer: '/data' } }] });
const rec = (fields) => ({ method: 'POST', path: '/api/events/', operation: 'create_event', status: 202,
  request_body: JSON.stringify(EVENT()), response_body: '', ...fields });

// A minimal instance of an OpenAPI schema: required properties only, enums' first value,
// formats honoured. Built from the spec itself so the sweep below covers every operation.
function instanceOf(schema, depth = 0) {
  if (depth > 40) throw new Error('schema too deep for the instance builder');
  if (schema.$ref) return instanceOf(spec.components.schemas[schema.$ref.split('/').pop()], depth + 1);
  if (schema.allOf) {
    return schema.allOf.map((s) => instanceOf(s, depth + 1)).reduce((a, b) => merge(a, b), undefined);
  }
  if (schema.oneOf || schema.anyOf) return instanceOf((schema.oneOf || schema.anyOf)[0], depth + 1);
  if (schema.enum) return schema.enum[0];
  const type = schema.type || (schema.properties ? 'object' : undefined);
  switch (type) {
    case 'object': {
      const out = {};
      for (const name of schema.required || []) {
        out[name] = schema.properties && schema.properties[name] ? instanceOf(schema.properties[name], depth + 1) : 'x';
      }
      return out;
    }
    case 'array': return schema.items ? [instanceOf(schema.items, depth + 1)] : [];
    case 'string':
      return { 'date-time': '2026-01-01T00:00:00+00:00', date: '2026-01-01', time: '10:00:00',
        uri: 'https://a.klaviyo.com/api/x/' }[schema.format] || 'x';
    case 'integer': return schema.minimum !== undefined ? schema.minimum : 1;
    case 'number': return schema.minimum !== undefined ? schema.minimum : 1.5;
    case 'boolean': return true;
    default: return {};
  }
}
function merge(a, b) {
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a)) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : v;
    return out;
  }
  return b === undefined ? a : b;
}

test('a create_event body from the spec passes, request and 202 without body', () => {
  const r = check(contract, [rec({})]);
  assert.deepEqual([r.passed, r.failed], [1, 0], JSON.stringify(r.violations));
});

test('create_event without a metric fails at the right pointer', () => {
  const body = EVENT();
  delete body.data.attributes.metric;
  const r = check(contract, [rec({ request_body: body })]);
  assert.equal(r.failed, 1);
  assert.ok(r.violations.some((v) => v.pointer === '/data/attributes' && /metric/.test(v.message)), JSON.stringify(r.violations));
  assert.equal(r.violations[0].direction, 'request');
  assert.equal(r.violations[0].operation, 'create_event');
});

test('date-time format is enforced and nullable admits null', () => {
  const bad = EVENT();
  bad.data.attributes.time = 'yesterday';
  let r = check(contract, [rec({ request_body: bad })]);
  assert.ok(r.violations.some((v) => v.pointer === '/data/attributes/time' && /date-time/.test(v.message)));
  const nulls = EVENT();
  nulls.data.attributes.time = null; // `nullable: true` in the spec
  nulls.data.attributes.value = null;
  r = check(contract, [rec({ request_body: nulls })]);
  assert.deepEqual([r.passed, r.failed], [1, 0], JSON.stringify(r.violations));
});

test('wrong resource type (enum) and wrong JSON type fail', () => {
  const body = EVENT();
  body.data.type = 'profile';
  let r = check(contract, [rec({ request_body: body })]);
  assert.ok(r.violations.some((v) => v.pointer === '/data/type'));
  const body2 = EVENT();
  body2.data.attributes.value = 'ten dollars';
  r = check(contract, [rec({ request_body: body2 })]);
  assert.ok(r.violations.some((v) => v.pointer === '/data/attributes/value'));
});

test('error documents are checked against the 4XX/5XX schemas', () => {
  let r = check(contract, [rec({ status: 400, request_body: '{}', response_body: ERROR_DOC() })]);
  assert.deepEqual([r.passed, r.failed], [1, 0], JSON.stringify(r.violations));
  const noId = ERROR_DOC();
  delete noId.errors[0].id;
  r = check(contract, [rec({ status: 429, response_body: noId })]);
  assert.equal(r.failed, 1);
  assert.equal(r.violations[0].pointer, '/errors/0');
  r = check(contract, [rec({ status: 503, response_body: { message: 'oops' } })]);
  assert.equal(r.failed, 1, 'a 5XX body must be a JSON:API error document');
});

test('rejected requests are not held to the request schema; accepted ones are', () => {
  const r = check(contract, [rec({ status: 400, request_body: '{"data":{}}', response_body: ERROR_DOC() })]);
  assert.deepEqual([r.passed, r.failed], [1, 0]);
  const r2 = check(contract, [rec({ status: 202, request_body: '{"data":{}}' })]);
  assert.equal(r2.failed, 1);
});

test('a profile response with nullable subscriptions and location validates; broken ones fail', () => {
  const profile = {
    data: {
      type: 'profile', id: '01HZZZZZZZZZZZZZZZZZZZZZZZ',
      attributes: { email: 'sarah@example.com', phone_number: null, external_id: null, first_name: null,
        location: { address1: null, latitude: '40.7128', longitude: -73.9 }, properties: {},
        created: '2026-01-01T00:00:00+00:00', updated: '2026-01-01T00:00:00+00:00', subscriptions: null },
      links: { self: 'http://127.0.0.1:8787/api/profiles/01HZZZZZZZZZZZZZZZZZZZZZZZ/' },
    },
    links: { self: 'http://127.0.0.1:8787/api/profiles/01HZZZZZZZZZZZZZZZZZZZZZZZ/' },
  };
  const get = (body) => ({ method: 'GET', path: '/api/profiles/01HZ/', operation: 'get_profile', status: 200,
    response_body: body });
  let r = check(contract, [get(profile)]);
  assert.deepEqual([r.passed, r.failed], [1, 0], JSON.stringify(r.violations));
  const badLat = structuredClone(profile);
  badLat.data.attributes.location.latitude = true; // oneOf [string, number]
  r = check(contract, [get(badLat)]);
  assert.ok(r.violations.some((v) => v.pointer === '/data/attributes/location/latitude'), JSON.stringify(r.violations));
  const badDate = structuredClone(profile);
  badDate.data.attributes.created = '2026-01-01 noon';
  r = check(contract, [get(badDate)]);
  assert.ok(r.violations.some((v) => v.pointer === '/data/attributes/created'));
  const noLinks = structuredClone(profile);
  delete noLinks.data.links;
  r = check(contract, [get(noLinks)]);
  assert.equal(r.failed, 1, 'a profile resource requires links');
  assert.ok(r.violations.some((v) => v.pointer === '/data' && /links/.test(v.message)), JSON.stringify(r.violations));
});

test('status handling: undocumented status fails, 501/unknown/fault are skipped, stray body fails', () => {
  let r = check(contract, [rec({ status: 200 })]);
  assert.equal(r.failed, 1);
  assert.match(r.violations[0].message, /status 200 is not documented/);
  r = check(contract, [rec({ status: 501, response_body: 'x' }), rec({ operation: undefined, path: '/nope' }),
    rec({ fault: 'reset', status: 202, response_body: '{"trunc' })]);
  assert.deepEqual([r.passed, r.failed, r.skipped], [0, 0, 3]);
  r = check(contract, [rec({ status: 0, response_body: '' })]); // reset before answering
  assert.deepEqual([r.passed, r.failed, r.skipped], [0, 0, 1]);
  r = check(contract, [{ method: 'GET', path: '/api/metrics/M1/', operation: 'get_metric', status: 200,
    response_body: '{"data": {"type": "met', response_truncated: true },
  rec({ request_body: '{"data": {"ty', request_truncated: true })]);
  assert.deepEqual([r.passed, r.failed], [0, 0], 'bodies the recorder cut are not judged');
  r = check(contract, [rec({ response_body: '{"data":null}' })]);
  assert.equal(r.failed, 1);
  assert.match(r.violations[0].message, /documents none/);
  r = check(contract, [{ method: 'GET', path: '/api/metrics/M1/', operation: 'get_metric', status: 200,
    response_body: '{"data": {"type": "metric"' }]);
  assert.match(r.violations[0].message, /not JSON/);
  r = check(contract, [{ method: 'GET', path: '/api/metrics/M1/', operation: 'get_metric', status: 200 }]);
  assert.match(r.violations[0].message, /body missing/);
});

test('the operation is found from method and path when the record lacks it', () => {
  assert.equal(contract.operationFor({ method: 'GET', path: '/api/profiles/ABC' }), 'get_profile');
  assert.equal(contract.operationFor({ method: 'GET', path: '/api/profiles/ABC/?x=1' }), 'get_profile');
  assert.equal(contract.operationFor({ method: 'POST', path: '/api/events/' }), 'create_event');
  assert.equal(contract.operationFor({ method: 'PUT', path: '/api/events/' }), undefined);
  assert.equal(contract.operationFor({ operation: 'no_such_op' }), undefined);
  assert.ok(pathPattern('/api/lists/{id}/relationships/profiles/').test('/api/lists/L1/relationships/profiles'));
});

test('converter: nullable on $ref/enum/oneOf, $ref siblings, discriminator, strictness', () => {
  const ajv = new Ajv({ strict: true, strictTypes: false });
  ajv.addSchema({ $id: 'd', definitions: { Cat: convert({ type: 'object', required: ['kind', 'meow'],
    properties: { kind: { type: 'string' }, meow: { type: 'boolean' } } }, 'd'),
  Dog: convert({ type: 'object', required: ['kind', 'bark'],
    properties: { kind: { type: 'string' }, bark: { type: 'integer' } } }, 'd') } });
  const nref = ajv.compile(convert({ $ref: '#/components/schemas/Cat', nullable: true }, 'd'));
  assert.equal(nref(null), true);
  assert.equal(nref({ kind: 'cat', meow: true }), true);
  assert.equal(nref({ kind: 'cat' }), false);
  const nenum = ajv.compile(convert({ type: 'string', enum: ['a', 'b'], nullable: true }, 'd'));
  assert.deepEqual([nenum('a'), nenum(null), nenum('c')], [true, true, false]);
  const notNull = ajv.compile(convert({ type: 'string' }, 'd'));
  assert.equal(notNull(null), false);
  const disc = ajv.compile(convert({ oneOf: [{ $ref: '#/components/schemas/Cat' }, { $ref: '#/components/schemas/Dog' }],
    discriminator: { propertyName: 'kind', mapping: { cat: '#/components/schemas/Cat', dog: '#/components/schemas/Dog' } } }, 'd'));
  assert.equal(disc({ kind: 'dog', bark: 3 }), true);
  assert.equal(disc({ kind: 'dog', meow: true }), false, 'the mapped branch decides');
  assert.equal(disc({ kind: 'cow', bark: 3 }), false);
  const implicit = ajv.compile(convert({ oneOf: [{ $ref: '#/components/schemas/Cat' }, { $ref: '#/components/schemas/Dog' }],
    discriminator: { propertyName: 'kind' } }, 'd'));
  assert.deepEqual([implicit({ kind: 'Cat', meow: false }), implicit({ kind: 'Cat', bark: 1 })], [true, false]);
  const overlapping = ajv.compile(convert({ oneOf: [{ type: 'object' },
    { type: 'object', properties: { a: { type: 'string' } } }] }, 'd'));
  assert.deepEqual([overlapping({}), overlapping({ a: 'x' }), overlapping({ a: 1 }), overlapping(5)],
    [true, true, true, false], 'oneOf over open objects admits a value matching several branches');
  const time = new Ajv({ strict: true });
  require(path.join(ROOT, 'tools/node/node_modules/ajv-formats'))(time);
  const t = time.compile(convert({ type: 'string', format: 'time', example: '10:00', 'x-klaviyo': 1 }, 'd'));
  assert.deepEqual([t('10:00:00'), t('25:00:00')], [true, false]);
  assert.throws(() => convert({ $ref: 'other.json#/X' }, 'd'), /unsupported \$ref/);
  assert.throws(() => ajv.compile(convert({ type: 'string', madeUpKeyword: 1 }, 'd')), /unknown keyword/);
});

test('sweep: a minimal instance of every operation\'s request and 2xx response passes, a broken one fails', () => {
  let checked = 0;
  for (const [opId, o] of contract.ops) {
    const req = contract.requestValidator(opId);
    if (req.validate) {
      const schema = (req.body.content['application/vnd.api+json'] || req.body.content['multipart/form-data']).schema;
      const body = instanceOf(schema);
      assert.ok(req.validate(body), `${opId} request: ${JSON.stringify(req.validate.errors)} for ${JSON.stringify(body)}`);
      assert.equal(req.validate({ data: 42 }), false, `${opId} request accepts data: 42`);
      checked++;
    }
    for (const status of Object.keys(o.op.responses).filter((s) => /^2\d\d$/.test(s))) {
      const res = contract.responseValidator(opId, status);
      if (!res.validate) continue;
      const body = instanceOf(res.resp.content['application/vnd.api+json'].schema);
      assert.ok(res.validate(body), `${opId} ${status}: ${JSON.stringify(res.validate.errors)} for ${JSON.stringify(body)}`);
      if (body && typeof body === 'object' && 'data' in body) {
        assert.equal(res.validate({ ...body, data: 42 }), false, `${opId} ${status} accepts data: 42`);
      }
      checked++;
    }
  }
  assert.ok(checked > 300, `only ${checked} bodies swept`);
});

test('multipart requests are read as forms: a good upload passes, a bad one fails by field', () => {
  const form = (...parts) => `${parts.map(([head, body]) => `--b1\r\n${head}\r\n\r\n${body}\r\n`).join('')}--b1--\r\n`;
  const FILE = ['Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png', '\u0089PNG\r\n--b0\r\n'];
  const upload = (body) => ({ method: 'POST', path: '/api/image-upload', operation: 'upload_image_from_file',
    status: 201, request_body: body, response_body: JSON.stringify({ data: { type: 'image', id: '1',
      attributes: { name: 'a.png', image_url: 'https://x/1.png', format: 'png', size: 9, hidden: true,
        updated_at: '2026-01-01T00:00:00+00:00' }, links: { self: 'https://x/api/images/1/' } } }) });
  const ok = check(contract, [upload(form(FILE, ['Content-Disposition: form-data; name="hidden"', 'true'],
    ['Content-Disposition: form-data; name="name"', 'Banner']))]);
  assert.deepEqual([ok.passed, ok.failed], [2, 0], JSON.stringify(ok.violations));
  const noFile = check(contract, [upload(form(['Content-Disposition: form-data; name="name"', 'x']))]);
  assert.ok(noFile.violations.some((v) => v.direction === 'request' && /file/.test(v.message)), JSON.stringify(noFile.violations));
  const badFlag = check(contract, [upload(form(FILE, ['Content-Disposition: form-data; name="hidden"', 'maybe']))]);
  assert.ok(badFlag.violations.some((v) => v.pointer === '/hidden' && /boolean/.test(v.message)), JSON.stringify(badFlag.violations));
  const cut = check(contract, [upload(form(FILE).slice(0, -8))]);
  assert.ok(cut.violations.some((v) => /closing boundary/.test(v.message)), JSON.stringify(cut.violations));
  const json = check(contract, [upload('{"data":{}}')]);
  assert.equal(json.failed, 1, JSON.stringify(json.violations));
});

test('CLI: journal input, violations printed, totals last, exit codes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contract-'));
  const cli = path.join(ROOT, 'tools', 'contract-check.js');
  const good = path.join(dir, 'good.jsonl');
  fs.writeFileSync(good, [rec({}), rec({ status: 400, request_body: '{}', response_body: JSON.stringify(ERROR_DOC()) })]
    .map((x) => JSON.stringify(x)).join('\n') + '\n');
  const out = execFileSync('node', [cli, '--journal', good, '--spec', SPEC_FILE], { encoding: 'utf8' });
  assert.equal(out.trim().split('\n').pop(), '2 passed, 0 failed');
  const badBody = EVENT();
  delete badBody.data.attributes.profile;
  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ requests: [rec({ request_body: badBody })] }));
  let r = spawnSync('node', [cli, '--dump', bad, '--spec', SPEC_FILE], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stdout, /^create_event request #0 \/data\/attributes: .*profile/m);
  assert.equal(r.stdout.trim().split('\n').pop(), '0 passed, 1 failed');
  const empty = path.join(dir, 'empty.jsonl');
  fs.writeFileSync(empty, '');
  r = spawnSync('node', [cli, '--journal', empty, '--spec', SPEC_FILE], { encoding: 'utf8' });
  assert.equal(r.status, 1, 'an empty journal checked nothing and must not pass');
  r = spawnSync('node', [cli, '--journal', path.join(dir, 'missing.jsonl'), '--spec', SPEC_FILE], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /ENOENT/);
  r = spawnSync('node', [cli], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /exactly one of/);
  fs.rmSync(dir, { recursive: true });
});
