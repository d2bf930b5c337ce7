'use strict';
// The contract: for each recorded exchange with an emulated operation, the request body the
// client sent and the response body the emulator answered must validate against the spec's
// schemas for that operation and status. Pure: takes the parsed spec and exchanges, returns
// results; reading files or URLs is the CLI's job (tools/contract-check.js).
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const { convert, convertComponents } = require('./openapi-schema');
const { decodeForm } = require('./multipart');

const DOC_ID = 'klaviyo-openapi';
const JSON_TYPES = ['application/vnd.api+json', 'application/json'];
const FORM = 'multipart/form-data';
const METHODS = ['get', 'post', 'patch', 'put', 'delete'];

function newAjv() {
  // strict: unknown keywords are compile errors (the converter must handle every one);
  // strictTypes/strictRequired off because the spec legitimately writes `properties` without
  // `type: object` and `required` names not listed in `properties`.
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false,
    strictTuples: false, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('binary', true); // file uploads: any string (multipart bodies are not JSON)
  return ajv;
}

// The JSON schema of a requestBody/response `content` map, or undefined when it has no JSON.
function jsonSchemaOf(content) {
  if (!content) return undefined;
  for (const type of JSON_TYPES) if (content[type] && content[type].schema) return content[type].schema;
  return undefined;
}

class Contract {
  constructor(spec) {
    this.spec = spec;
    this.ajv = newAjv();
    this.ajv.addSchema(convertComponents(spec, DOC_ID));
    this.ops = new Map(); // operationId -> {method, path, op, pattern}
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        this.ops.set(op.operationId, { method: method.toUpperCase(), path, op, pattern: pathPattern(path) });
      }
    }
    // spec schema object -> compiled validator: the shared error responses compile once.
    this.cache = new Map();
  }

  // `{$ref}` objects in `responses` point at #/components/responses/...
  resolveResponse(r) {
    if (r && r.$ref) {
      const name = r.$ref.replace('#/components/responses/', '');
      const target = this.spec.components.responses[name];
      if (!target) throw new Error(`unresolved response ${r.$ref}`);
      return target;
    }
    return r;
  }

  // Which operation a record is about: its recorded operation id, else method + path.
  operationFor(rec) {
    if (rec.operation) return this.ops.has(rec.operation) ? rec.operation : undefined;
    const path = (rec.path || '').split('?')[0];
    for (const [id, o] of this.ops) if (o.method === rec.method && o.pattern.test(path)) return id;
    return undefined;
  }

  compile(schema) {
    if (!schema) return null;
    if (!this.cache.has(schema)) this.cache.set(schema, this.ajv.compile(convert(schema, DOC_ID)));
    return this.cache.get(schema);
  }

  // The response documented for a status: exact code first, then its class (4XX), then default.
  responseFor(opId, status) {
    const responses = this.ops.get(opId).op.responses || {};
    const code = String(status);
    const hit = responses[code] || responses[`${code[0]}XX`] || responses.default;
    return hit ? this.resolveResponse(hit) : undefined;
  }

  // A request body is JSON, or a multipart form (form: its schema, read by decodeForm).
  requestValidator(opId) {
    const body = this.ops.get(opId).op.requestBody;
    const json = body && jsonSchemaOf(body.content);
    const form = !json && body && body.content[FORM] ? body.content[FORM].schema : undefined;
    return { body, form, validate: this.compile(json || form) };
  }

  responseValidator(opId, status) {
    const resp = this.responseFor(opId, status);
    if (!resp) return undefined;
    return { resp, validate: this.compile(jsonSchemaOf(resp.content)) };
  }
}

// /api/profiles/{id}/ -> ^/api/profiles/[^/]+/?$ (Klaviyo paths end with a slash in the spec;
// clients and the emulator may omit it).
function pathPattern(path) {
  const body = path.replace(/\/$/, '').split('/').map((seg) =>
    /^\{.+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/');
  return new RegExp(`^${body}/?$`);
}

// A local `#/components/schemas/X` reference resolved to its schema (one level).
function resolveRef(spec, schema) {
  if (!schema || !schema.$ref) return schema;
  return spec.components.schemas[schema.$ref.split('/').pop()];
}

// A recorded body: absent (undefined/null/""), already decoded, or a JSON string.
function decodeBody(raw) {
  if (raw === undefined || raw === null || raw === '') return { present: false };
  if (typeof raw !== 'string') return { present: true, value: raw };
  try {
    return { present: true, value: JSON.parse(raw) };
  } catch (e) {
    return { present: true, error: `body is not JSON (${e.message})` };
  }
}

// Normalises the field names of one exchange (journal lines, GET /__emulator/requests items).
function normalize(rec) {
  const pick = (...names) => names.map((n) => rec[n]).find((v) => v !== undefined);
  return {
    method: String(pick('method') || '').toUpperCase(),
    path: pick('path', 'uri'),
    operation: pick('operation', 'operation_id', 'op', 'op_id'),
    status: Number(pick('status')),
    requestBody: pick('request_body', 'req_body', 'body'),
    responseBody: pick('response_body', 'resp_body'),
    fault: pick('fault'),
    requestTruncated: Boolean(pick('request_truncated')),
    responseTruncated: Boolean(pick('response_truncated')),
  };
}

function ajvViolations(validate, where) {
  return validate.errors.map((e) => ({
    ...where,
    pointer: e.instancePath || '',
    message: `${e.message}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''} (schema ${e.schemaPath})`,
  }));
}

// Checks one body; returns null (passed) or a list of violations.
function checkBody(decoded, validate, where, required) {
  if (!decoded.present) return required ? [{ ...where, pointer: '', message: 'body missing' }] : null;
  if (decoded.error) return [{ ...where, pointer: '', message: decoded.error }];
  if (!validate) return [{ ...where, pointer: '', message: 'body present where the spec documents none' }];
  return validate(decoded.value) ? null : ajvViolations(validate, where);
}

function newResult() {
  return { passed: 0, failed: 0, skipped: 0, violations: [] };
}

// Validates exchanges; returns {passed, failed, skipped, violations}. One count per body checked.
function check(contract, records) {
  const out = newResult();
  records.forEach((raw, index) => checkOne(contract, out, raw, index));
  return out;
}

// Validates one exchange (record number `index`), adding to the result `out`; lets a caller
// stream a large journal without holding it.
function checkOne(contract, out, raw, index) {
  const tally = (v) => {
    if (v) { out.failed += 1; out.violations.push(...v); } else out.passed += 1;
  };
  const rec = normalize(raw);
  const opId = contract.operationFor(rec);
  // Not an API operation (404/405/admin), not emulated (501), or no answer at all (status 0:
  // a fault rule reset the connection first): the emulator answered nothing the spec describes.
  if (!opId || rec.status === 501 || rec.fault || !Number.isFinite(rec.status) || rec.status < 100) {
    out.skipped += 1;
    return;
  }
  const ok = rec.status >= 200 && rec.status < 300;
  // Request bodies: only those the emulator accepted. A rejected body may be a spec testing
  // the rejection on purpose; an accepted one must be what Klaviyo documents.
  // A body the recorder cut (GET /__emulator/requests keeps at most 1 MB) cannot be judged.
  const req = contract.requestValidator(opId);
  if (ok && req.validate && !rec.requestTruncated) {
    const decoded = req.form ? decodeForm(rec.requestBody, resolveRef(contract.spec, req.form))
      : decodeBody(rec.requestBody);
    tally(checkBody(decoded, req.validate,
      { index, operation: opId, direction: 'request' }, req.body.required));
  }
  const res = contract.responseValidator(opId, rec.status);
  const where = { index, operation: opId, direction: 'response' };
  if (!res) {
    tally([{ ...where, pointer: '', message: `status ${rec.status} is not documented for ${opId}` }]);
    return;
  }
  if (rec.responseTruncated) return;
  const body = decodeBody(rec.responseBody);
  if (!res.validate && !body.present) return; // 202/204 without a body: nothing to check
  tally(checkBody(body, res.validate, where, true));
}

function formatViolation(v) {
  return `${v.operation} ${v.direction} #${v.index} ${v.pointer || '/'}: ${v.message}`;
}

module.exports = { Contract, check, checkOne, newResult, decodeBody, normalize, pathPattern, formatViolation };
