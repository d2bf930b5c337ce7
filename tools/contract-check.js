#!/usr/bin/env node
'use strict';
// Contract check: validates recorded emulator exchanges against Klaviyo's OpenAPI spec.
//   node tools/contract-check.js --journal FILE    JSON lines, one exchange each (emulator --journal)
//   node tools/contract-check.js --dump FILE       a JSON array (or {"requests"|"data": [...]})
//   node tools/contract-check.js --url URL [--account ID]   fetches URL/__emulator/requests
//   [--spec FILE] (default: openapi/klaviyo-stable-2026-07-15.json)
//   [--quiet] print only the totals line
//   [--allow-empty] an input without exchanges passes (by default it fails: nothing was checked)
// Prints one line per violation (operation, direction, record index, JSON pointer, message) and
// ends with `N passed, N failed` (one per body checked). Exits 1 on any violation, 2 on bad usage
// or unreadable input. The logic lives in tools/node/lib/contract.js (it sees ajv there).
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { Contract, checkOne, newResult, formatViolation } = require('./node/lib/contract');

const USAGE = 'usage: contract-check.js (--journal FILE | --dump FILE | --url URL [--account ID]) [--spec FILE] [--quiet] [--allow-empty]';

function parseArgs(argv) {
  const opts = { quiet: false, allowEmpty: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quiet') opts.quiet = true;
    else if (a === '--allow-empty') opts.allowEmpty = true;
    else if (['--journal', '--dump', '--url', '--spec', '--account'].includes(a)) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      opts[a.slice(2)] = argv[++i];
    } else throw new Error(`unknown argument ${a}`);
  }
  const sources = ['journal', 'dump', 'url'].filter((k) => opts[k] !== undefined);
  if (sources.length !== 1) throw new Error('give exactly one of --journal, --dump, --url');
  if (opts.account !== undefined && opts.url === undefined) throw new Error('--account goes with --url');
  return opts;
}

// Yields the exchanges of a JSON-lines journal one at a time (a suite's journal can be large).
async function* readJournal(file) {
  const lines = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${n}: not JSON (${e.message})`);
    }
  }
}

function unwrap(doc, where) {
  if (Array.isArray(doc)) return doc;
  for (const k of ['requests', 'data', 'exchanges']) if (doc && Array.isArray(doc[k])) return doc[k];
  throw new Error(`${where}: expected an array of exchanges (or an object with "requests")`);
}

// The exchanges to check, as an (async) iterable.
async function loadRecords(opts) {
  if (opts.journal) {
    fs.accessSync(opts.journal, fs.constants.R_OK); // a missing journal is a usage error, early
    return readJournal(opts.journal);
  }
  if (opts.dump) return unwrap(JSON.parse(fs.readFileSync(opts.dump, 'utf8')), opts.dump);
  const url = `${opts.url.replace(/\/$/, '')}/__emulator/requests` +
    (opts.account ? `?account=${encodeURIComponent(opts.account)}` : '');
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return unwrap(await res.json(), url);
}

function defaultSpec() {
  return path.join(__dirname, '..', 'openapi', 'klaviyo-stable-2026-07-15.json');
}

async function main() {
  let opts;
  let records;
  let contract;
  try {
    opts = parseArgs(process.argv.slice(2));
    records = await loadRecords(opts);
    contract = new Contract(JSON.parse(fs.readFileSync(opts.spec || defaultSpec(), 'utf8')));
  } catch (e) {
    console.error(`contract-check: ${e.message}\n${USAGE}`);
    console.log('0 passed, 1 failed');
    return 2;
  }
  const result = newResult();
  let count = 0;
  try {
    for await (const rec of records) {
      checkOne(contract, result, rec, count++);
      if (!opts.quiet) for (const v of result.violations) console.log(formatViolation(v));
      result.violations.length = 0;
    }
  } catch (e) {
    console.error(`contract-check: ${e.message}`);
    console.log(`${result.passed} passed, ${result.failed + 1} failed`);
    return 2;
  }
  if (count === 0 && !opts.allowEmpty) {
    console.log('contract-check: no exchanges recorded; nothing was checked');
    result.failed += 1;
  }
  console.log(`${count} exchanges, ${result.skipped} skipped (no operation, 501 or no answer)`);
  console.log(`${result.passed} passed, ${result.failed} failed`);
  return result.failed === 0 ? 0 : 1;
}

main().then((code) => { process.exitCode = code; });
