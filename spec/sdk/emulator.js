'use strict';
// Test helper for the Node tests: an emulator to talk to and its admin API. Uses
// KLAVIYO_EMULATOR_URL when set (the harness runs one emulator for the whole suite); otherwise
// starts one on a free loopback port with emulator/klaviyo-emulator and stops it afterwards.
const net = require('net');
const path = require('path');
const { execFileSync } = require('child_process');
const { createRequire } = require('module');

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'emulator', 'klaviyo-emulator');
// The npm packages live in tools/node (tools/node/package.json); resolve them from there.
const requireTool = createRequire(path.join(ROOT, 'tools', 'node', 'package.json'));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Returns {url, stop()}: stop() is a no-op for an emulator we did not start.
async function start() {
  if (process.env.KLAVIYO_EMULATOR_URL) {
    return { url: process.env.KLAVIYO_EMULATOR_URL.replace(/\/$/, ''), stop() {} };
  }
  const port = await freePort();
  // --watch-pid: the emulator quits by itself if this test process dies without stopping it.
  const out = execFileSync(CLI, ['start', '--port', String(port), '--watch-pid', String(process.pid)],
    { encoding: 'utf8' }).trim();
  const url = out.split('\n').pop().trim().replace(/\/$/, '');
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`emulator start printed ${JSON.stringify(out)}`);
  return {
    url,
    stop() { execFileSync(CLI, ['stop', '--port', String(port)], { stdio: 'ignore' }); },
  };
}

// Calls the admin API; returns the decoded answer, throws on a non-2xx status.
async function admin(url, method, route, body) {
  const res = await fetch(`${url}/__emulator/${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /__emulator/${route}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// An SDK error (axios) with the response's status and body, not just "Request failed".
function explain(err) {
  if (err && err.response) {
    const { status, data } = err.response;
    return new Error(`HTTP ${status}: ${typeof data === 'string' ? data : JSON.stringify(data)}`);
  }
  return err;
}

module.exports = { start, admin, explain, requireTool, freePort, ROOT };
