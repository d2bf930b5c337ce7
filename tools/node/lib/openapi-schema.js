'use strict';
// Converts OpenAPI 3.0 schema objects into JSON Schema (draft-07) that Ajv compiles in strict
// mode. OpenAPI 3.0 is a dialect: `nullable` instead of a "null" type, `discriminator`, `$ref`
// whose siblings mean something to the spec's authors, and annotation keywords (`example`,
// `x-*`) that JSON Schema does not know. Converting (instead of switching strict mode off) keeps
// Ajv strict, so a keyword we do not handle is a loud compile error, never a silent pass.

// Keywords that only annotate in OpenAPI and are unknown to JSON Schema: dropped.
const DROP = new Set(['example', 'xml', 'externalDocs', 'deprecated']);

// Keywords whose value is a single subschema, a map of subschemas, or an array of them.
const ONE = new Set(['items', 'not', 'additionalProperties']);
const MAP = new Set(['properties']);
const LIST = new Set(['allOf', 'oneOf', 'anyOf']);

// Rewrites `#/components/schemas/X` into `<docId>#/definitions/X`: the converted components
// are registered with Ajv as one schema document (docId) whose `definitions` hold them, so a
// schema compiled on its own still resolves into the shared definitions.
const COMPONENT = '#/components/schemas/';
function rewriteRef(ref, docId) {
  if (typeof ref !== 'string' || !ref.startsWith(COMPONENT)) {
    throw new Error(`unsupported $ref ${JSON.stringify(ref)}: the spec's schemas only reference ${COMPONENT}*`);
  }
  return `${docId}#/definitions/${ref.slice(COMPONENT.length)}`;
}

// discriminator {propertyName, mapping} over oneOf: OpenAPI picks the branch by the tag's value.
// JSON Schema has no such keyword, so the tag must be present and one of the mapped values, and
// each value's branch must validate (if/then). Without a mapping the branch is the schema whose
// name is the value (OpenAPI's implicit mapping), which needs each branch to be a $ref.
function convertDiscriminator(schema, docId) {
  const { propertyName, mapping } = schema.discriminator;
  if (typeof propertyName !== 'string') throw new Error('discriminator without propertyName');
  const branches = schema.oneOf || schema.anyOf;
  if (!Array.isArray(branches)) throw new Error('discriminator without oneOf/anyOf');
  let pairs;
  if (mapping) {
    pairs = Object.entries(mapping).map(([value, ref]) => [value, { $ref: rewriteRef(ref, docId) }]);
  } else {
    pairs = branches.map((b) => {
      if (!b.$ref) throw new Error('discriminator without mapping needs $ref branches');
      return [b.$ref.split('/').pop(), { $ref: rewriteRef(b.$ref, docId) }];
    });
  }
  const out = {
    type: 'object',
    required: [propertyName],
    properties: { [propertyName]: { enum: pairs.map(([v]) => v) } },
    allOf: pairs.map(([value, then]) => ({
      if: { properties: { [propertyName]: { const: value } }, required: [propertyName] },
      then,
    })),
  };
  return out;
}

// Converts one schema object (recursively). Returns a new object; the input is not modified.
function convert(schema, docId) {
  if (schema === true || schema === false) return schema;
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new Error(`not a schema object: ${JSON.stringify(schema)}`);
  }
  if (schema.oneOf && schema.anyOf) throw new Error('oneOf beside anyOf is not supported');
  let out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROP.has(key) || key.startsWith('x-') || key === 'nullable' || key === 'discriminator') continue;
    if (key === '$ref') out.$ref = rewriteRef(value, docId);
    else if (ONE.has(key)) out[key] = typeof value === 'boolean' ? value : convert(value, docId);
    else if (MAP.has(key)) {
      out[key] = {};
      for (const [name, sub] of Object.entries(value)) out[key][name] = convert(sub, docId);
    } else if (key === 'oneOf' && !schema.discriminator) {
      // Klaviyo's oneOf branches are open objects (no additionalProperties: false) that
      // overlap: real data such as a campaign's `send_options: {}` matches several of them, so
      // "exactly one" would reject what Klaviyo itself sends. A value must still match one.
      out.anyOf = value.map((sub) => convert(sub, docId));
    } else if (LIST.has(key)) out[key] = value.map((sub) => convert(sub, docId));
    else if (key === 'format' && value === 'time') {
      // Klaviyo's `time` values are wall-clock times whose zone is a separate field
      // (e.g. TimeDelayActionData.timezone); RFC 3339 full-time would demand an offset.
      out.format = 'iso-time';
    } else out[key] = value;
  }
  if (schema.discriminator) {
    const disc = convertDiscriminator(schema, docId);
    delete out.oneOf;
    delete out.anyOf;
    out = Object.keys(out).length ? { allOf: [out, disc] } : disc;
  }
  // In OpenAPI 3.0 siblings of $ref (nullable, a narrower description) are meant to apply;
  // keep $ref alone in its own subschema so no JSON Schema draft ignores them.
  if (out.$ref && Object.keys(out).some((k) => k !== '$ref' && !isAnnotation(k))) {
    const ref = out.$ref;
    delete out.$ref;
    out.allOf = [{ $ref: ref }, ...(out.allOf || [])];
  }
  if (schema.nullable === true) out = allowNull(out);
  return out;
}

function isAnnotation(key) {
  return key === 'description' || key === 'title' || key === 'default' || key === 'readOnly' ||
    key === 'writeOnly';
}

// nullable: true admits null in addition to what the schema admits.
function allowNull(out) {
  if (typeof out.type === 'string' && !out.allOf && !out.oneOf && !out.anyOf && !out.$ref) {
    const res = { ...out, type: [out.type, 'null'] };
    if (Array.isArray(out.enum) && !out.enum.includes(null)) res.enum = [...out.enum, null];
    return res;
  }
  const annotations = {};
  const rest = {};
  for (const [k, v] of Object.entries(out)) (isAnnotation(k) ? annotations : rest)[k] = v;
  return { ...annotations, anyOf: [{ type: 'null' }, rest] };
}

// Builds the document Ajv registers under docId: every component schema converted, under
// `definitions` (the draft-07 place for them), so rewritten refs resolve.
function convertComponents(spec, docId) {
  const schemas = {};
  for (const [name, schema] of Object.entries((spec.components && spec.components.schemas) || {})) {
    try {
      schemas[name] = convert(schema, docId);
    } catch (e) {
      throw new Error(`components.schemas.${name}: ${e.message}`);
    }
  }
  return { $id: docId, definitions: schemas };
}

module.exports = { convert, convertComponents, allowNull };
