'use strict';
// examples/bot/server.js on localhost, answering through the real bridge with a fallback.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createBridge } = require('..');
const { PassThrough } = require('node:stream');
const { createChatServer, readBody } = require('../examples/bot/server');
const { bridgeOptions } = require('./support/helpers');

async function post(port, body) {
  const r = await fetch(`http://127.0.0.1:${port}/api/chat`, { method: 'POST',
    headers: { 'content-type': 'application/json' }, body });
  return { status: r.status, body: await r.json() };
}

test('POST /api/chat answers locally, falls back, and rejects bad bodies', async (t) => {
  const bridge = createBridge(bridgeOptions({ args: ['--max-prompt-tokens', '512'] }));
  const seen = [];
  const fallback = async (input, err) => { seen.push(err && err.code); return 'resposta do fallback'; };
  const server = createChatServer({ bridge, fallback, keywords: ['farense', 'hassan'],
    askOptions: { max_tokens: 6 } });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => { server.close(); await bridge.close(); });
  const { port } = server.address();

  const local = await post(port, JSON.stringify({ message: 'Quem foi Hassan Nader?' }));
  assert.equal(local.status, 200);
  assert.equal(local.body.source, 'local');
  assert.equal(typeof local.body.message, 'string');

  const other = await post(port, JSON.stringify({ message: 'Que tempo faz em Lisboa?' }));
  assert.deepEqual(other.body, { message: 'resposta do fallback', source: 'fallback' });

  const tooLong = await post(port, JSON.stringify({ message: 'Farense '.repeat(3000) }));
  assert.deepEqual(tooLong.body, { message: 'resposta do fallback', source: 'fallback' });
  assert.deepEqual(seen, [null, 'too_long']); // routed away, then the local model refused

  process.kill(bridge.pid, 'SIGKILL'); // the bridge dies; the next message restarts it
  while (bridge.pid) await new Promise((r) => setTimeout(r, 20));
  const again = await post(port, JSON.stringify({ messages: [{ role: 'user', content: 'Farense?' }] }));
  assert.deepEqual([again.status, again.body.source], [200, 'local']);

  assert.equal((await post(port, '{not json')).status, 400);
  assert.equal((await post(port, JSON.stringify({ message: '' }))).status, 400);
  assert.equal((await post(port, JSON.stringify({ message: 'x'.repeat(70000) }))).status, 413);
});

test('a body over the limit is refused and not kept in memory as it keeps coming', async () => {
  const req = new PassThrough();
  const read = readBody(req);
  const rejected = assert.rejects(read, (err) => err.status === 413);
  for (let i = 0; i < 40; i += 1) req.write('x'.repeat(16 * 1024)); // 640 KB against a 64 KB cap
  await rejected;
  assert.equal(req.listenerCount('data'), 0, 'no data listener left appending to the body');
  req.end();
});
