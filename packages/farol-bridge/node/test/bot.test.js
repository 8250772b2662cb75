'use strict';
// examples/bot/server.js on localhost, answering through the real bridge with a fallback.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createBridge } = require('..');
const { PassThrough } = require('node:stream');
const { createChatServer, localBridge, openaiFallback, readBody } = require('../examples/bot/server');
const { bridgeOptions } = require('../support/helpers');

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

/** A fake OpenAI-compatible endpoint on 127.0.0.1 that records what it was asked. */
async function fakeOpenAI(t) {
  const asked = [];
  const server = require('node:http').createServer(async (req, res) => {
    const body = JSON.parse(await readBody(req));
    asked.push({ url: req.url, auth: req.headers.authorization, body });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: `fake: ${body.messages.at(-1).content}` } }] }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return { asked, baseUrl: `http://127.0.0.1:${server.address().port}/v1/` };
}

test('a missing local model: one loud line at start, then every message goes to the fallback', async (t) => {
  const { asked, baseUrl } = await fakeOpenAI(t);
  const errors = [];
  const original = console.error;
  console.error = (line) => errors.push(line);
  let bridge;
  try { bridge = localBridge({ FAROL_MODEL: '/nope' }); } finally { console.error = original; }
  assert.equal(bridge, null);
  assert.deepEqual(errors.length, 1);
  assert.match(errors[0], /no model at \/nope/);
  const fallback = openaiFallback({ baseUrl, model: 'modelo-local', apiKey: 'k' });
  const server = createChatServer({ bridge, fallback });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const started = Date.now();
  const replies = [];
  for (const message of ['Olá', 'Quem foi Hassan Nader?']) replies.push(await post(server.address().port, JSON.stringify({ message })));
  assert.ok(Date.now() - started < 1000, 'no bridge started per message');
  assert.deepEqual(replies.map((r) => r.body), [{ message: 'fake: Olá', source: 'fallback' },
    { message: 'fake: Quem foi Hassan Nader?', source: 'fallback' }]);
  assert.deepEqual(asked.map((a) => [a.url, a.auth, a.body.model]),
    [['/v1/chat/completions', 'Bearer k', 'modelo-local'], ['/v1/chat/completions', 'Bearer k', 'modelo-local']]);
});

test('the fallback follows OPENAI_BASE_URL and OPENAI_MODEL', async (t) => {
  const { asked, baseUrl } = await fakeOpenAI(t);
  const saved = { ...process.env };
  Object.assign(process.env, { OPENAI_BASE_URL: baseUrl, OPENAI_MODEL: 'outro' });
  delete process.env.OPENAI_API_KEY;
  try {
    assert.equal(await openaiFallback()([{ role: 'user', content: 'x' }]), 'fake: x');
  } finally {
    for (const k of ['OPENAI_BASE_URL', 'OPENAI_MODEL', 'OPENAI_API_KEY']) {
      if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
  }
  assert.deepEqual([asked[0].body.model, asked[0].auth], ['outro', undefined]);
});
