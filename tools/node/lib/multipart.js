'use strict';
// Reads a recorded multipart/form-data request body into the object its OpenAPI schema
// describes: one property per form field, its text as the value (a file's bytes too), with
// fields the schema types as boolean, integer or number converted from their text as a form
// encodes them ("true", "42"). The boundary is the body's first line (the recorder keeps the
// body, not its Content-Type header). Returns { present, value } or { present, error }.

function formValue(text, schema) {
  const type = schema && schema.type;
  if (type === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  if ((type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

function decodeForm(raw, schema) {
  if (raw === undefined || raw === null || raw === '') return { present: false };
  if (typeof raw !== 'string') return { present: true, error: 'multipart body is not text' };
  const first = raw.indexOf('\r\n');
  if (!raw.startsWith('--') || first < 3) return { present: true, error: 'multipart body does not start with a boundary' };
  const delim = `\r\n${raw.slice(0, first)}`;
  const props = (schema && schema.properties) || {};
  const value = {};
  let pos = first + 2;
  for (;;) {
    const hend = raw.indexOf('\r\n\r\n', pos);
    if (hend < 0) return { present: true, error: 'multipart part without the end of its headers' };
    const m = /content-disposition:\s*form-data;[^\r\n]*?\bname="([^"]*)"/i.exec(raw.slice(pos, hend));
    if (!m) return { present: true, error: 'multipart part without a form-data name' };
    const end = raw.indexOf(delim, hend + 4);
    if (end < 0) return { present: true, error: 'multipart body without its closing boundary' };
    if (m[1] in value) return { present: true, error: `multipart field ${m[1]} given twice` };
    value[m[1]] = formValue(raw.slice(hend + 4, end), props[m[1]]);
    pos = end + delim.length;
    if (raw.startsWith('--', pos)) return { present: true, value };
    if (!raw.startsWith('\r\n', pos)) return { present: true, error: 'multipart boundary not followed by a line end' };
    pos += 2;
  }
}

module.exports = { decodeForm };
