'use strict';
// The client against the real Python bridge and the tiny model, plus two fake children.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { createBridge, withFallback, routeByKeywords } = require('..');
const { bridgeOptions } = require('../support/helpers');

const FAKE = path.join(__dirname, '..', 'support', 'fake-bridge.js');
const PROMPTS = ['Quem foi Hassan Nader?', 'Olá', 'Em que ano foi fundado o Farense?',
  'Fala-me do Estádio de São Luís', 'Quem treinou o Farense?', 'Faro', 'Golos de 1990',
  'O Farense na Taça UEFA', 'Hino do clube', 'Quem é o presidente?'];

test('the real bridge', async (t) => {
  const bridge = createBridge(bridgeOptions());
  t.after(() => bridge.close());

  await t.test('ask resolves with the reply line', async () => {
    const reply = await bridge.ask('Quem foi Hassan Nader?', { max_tokens: 6 });
    assert.equal(reply.status, 'ok');
    assert.equal(typeof reply.response, 'string');
    assert.ok(reply.usage.completion_tokens <= 6 && reply.usage.prompt_tokens > 0);
    const chat = await bridge.ask([{ role: 'user', content: 'Quem foi Hassan Nader?' }],
      { max_tokens: 6 });
    assert.equal(chat.response, reply.response); // same template either way
  });

  await t.test('stream yields pieces that add up to the answer', async () => {
    const pieces = [];
    for await (const piece of bridge.stream('Olá', { max_tokens: 10 })) pieces.push(piece);
    const whole = await bridge.ask('Olá', { max_tokens: 10 });
    assert.ok(pieces.length > 1);
    assert.equal(pieces.join(''), whole.response);
  });

  await t.test('breaking out of a stream cancels its generation', async () => {
    for await (const piece of bridge.stream('Olá', { max_tokens: 2000 })) {
      assert.equal(typeof piece, 'string');
      break;
    }
    const next = await bridge.ask('Olá', { max_tokens: 4 });
    assert.ok(next.timing.queue_seconds < 2, 'it did not wait for 2000 abandoned tokens');
  });

  await t.test('10 parallel asks each get their own answer', async () => {
    const alone = [];
    for (const p of PROMPTS) alone.push((await bridge.ask(p, { max_tokens: 8 })).response);
    const together = await Promise.all(PROMPTS.map((p) => bridge.ask(p, { max_tokens: 8 })));
    assert.deepEqual(together.map((r) => r.response), alone);
    assert.equal(new Set(together.map((r) => r.id)).size, 10);
    assert.ok(together.some((r) => r.timing.batched), 'concurrent asks were batched');
  });

  await t.test('a timeout rejects and cancels the generation', async () => {
    await assert.rejects(bridge.ask('Olá', { max_tokens: 2000, timeoutMs: 150 }),
      (err) => err.code === 'timeout');
    const next = await bridge.ask('Olá', { max_tokens: 4 });
    assert.equal(next.status, 'ok');
    assert.ok(next.timing.queue_seconds < 2, 'it did not wait for 2000 cancelled tokens');
  });

  await t.test('a killed bridge rejects in-flight requests, then restarts', async () => {
    const pid = bridge.pid;
    const inFlight = bridge.ask('Olá', { max_tokens: 2000 });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    await assert.rejects(inFlight, (err) => err.code === 'exited' && /signal SIGKILL/.test(err.message));
    const reply = await bridge.ask('Olá', { max_tokens: 4 });
    assert.equal(reply.status, 'ok');
    assert.notEqual(bridge.pid, pid);
  });

  await t.test('a request over 1 MiB rejects at once with too_long, not a timeout', async () => {
    // The bridge's too_long reply to such a line has no id: the client must refuse to send it.
    await assert.rejects(bridge.ask('Farense '.repeat(140000), { timeoutMs: 5000 }),
      (err) => err.code === 'too_long');
    assert.equal((await bridge.ask('Olá', { max_tokens: 2 })).status, 'ok');
  });

  await t.test('bridge errors reject with their code', async () => {
    await assert.rejects(bridge.ask('Olá', { max_tokens: -1 }), (err) => err.code === 'bad_request');
    await assert.rejects(bridge.ask(' '.repeat(10) + 'Farense '.repeat(5000)),
      (err) => err.code === 'too_long');
  });

  await t.test('an AbortSignal per request cancels it; AbortSignal.timeout works', async () => {
    await assert.rejects(bridge.ask('Olá', { max_tokens: 2000, signal: AbortSignal.timeout(150) }),
      (err) => err.code === 'aborted' && err.cause.name === 'TimeoutError');
    const controller = new AbortController();
    const pieces = [];
    await assert.rejects((async () => {
      for await (const piece of bridge.stream('Olá', { max_tokens: 2000, signal: controller.signal })) {
        pieces.push(piece);
        controller.abort();
      }
    })(), (err) => err.code === 'aborted');
    assert.equal(pieces.length, 1);
    await assert.rejects(bridge.ask('Olá', { signal: AbortSignal.abort() }), (err) => err.code === 'aborted');
    const next = await bridge.ask('Olá', { max_tokens: 4 });
    assert.ok(next.timing.queue_seconds < 2, 'it did not wait for 2000 aborted tokens');
  });

  await t.test('withFallback and routeByKeywords', async () => {
    const answer = withFallback(bridge, async (q, err) => `openai: ${q} (${err.code})`);
    const local = await answer('Olá', { max_tokens: 3 });
    assert.equal(local.source, 'local');
    const fallback = await answer('Olá', { max_tokens: 2000, timeoutMs: 100 });
    assert.deepEqual([fallback.source, fallback.text], ['fallback', 'openai: Olá (timeout)']);
    const route = routeByKeywords(['farense', 'hassan nader'], async () => 'local',
      async () => 'other');
    assert.equal(await route('Quem foi HASSAN Nader?'), 'local');
    assert.equal(await route([{ role: 'user', content: 'O Farénse ganhou?' }]), 'local');
    assert.equal(await route('Que tempo faz em Lisboa?'), 'other');
    const failing = routeByKeywords(['farense'], async () => { throw new Error('x'); },
      async () => 'other');
    assert.equal(await failing('farense'), 'other');
  });

  await t.test('close shuts the bridge down with exit 0', async () => {
    const child = bridge.child;
    await bridge.close();
    assert.equal(child.exitCode, 0);
    await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'closed');
  });
});

test('malformed output from a fake child is ignored around real replies', async (t) => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'noisy'], timeoutMs: 5000 });
  t.after(() => bridge.close());
  const reply = await bridge.ask('Olá');
  assert.equal(reply.response, 'eco: Olá');
  const pieces = [];
  for await (const piece of bridge.stream('x')) pieces.push(piece);
  assert.deepEqual(pieces, ['eco: ']);
});

test('a dying child rejects with its exit code and stderr; the next request restarts it', async (t) => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'crash'], timeoutMs: 5000,
    restart: { minDelayMs: 200 } });
  t.after(() => bridge.close());
  await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'exited' && err.exitCode === 3
    && /code 3/.test(err.message) && /MemoryError: out of memory/.test(err.message));
  const started = Date.now();
  await assert.rejects(bridge.ask('Olá'), (err) => err.exitCode === 3);
  assert.ok(Date.now() - started >= 150, 'the restart waited for its backoff');
  assert.equal(bridge.starts, 2);
});

test('a command that does not exist rejects clearly', async () => {
  const bridge = createBridge({ command: '/nonexistent/farol-bridge', restart: false });
  await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'start_failed' && /ENOENT/.test(err.message));
});

test('close() during the restart wait starts no new bridge', async () => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'crash'], timeoutMs: 5000,
    restart: { minDelayMs: 500 } });
  await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'exited');
  const waiting = assert.rejects(bridge.ask('Olá'), (err) => err.code === 'closed'); // 500 ms wait
  await bridge.close();
  await waiting;
  await new Promise((r) => setTimeout(r, 700));
  assert.deepEqual([bridge.starts, bridge.pid], [1, null]);
});

test('a request made just before close() rejects as closed, not as an exit', async () => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'noisy'], timeoutMs: 5000 });
  await bridge.ping();
  const late = assert.rejects(bridge.ask('Olá'), (err) => err.code === 'closed'); // would follow shutdown
  await bridge.close();
  await late;
});

test('a streamed answer resets the restart count, as an answer from ask does', async (t) => {
  const bridge = createBridge(bridgeOptions({ restart: { minDelayMs: 10, maxRestarts: 1 } }));
  t.after(() => bridge.close());
  const answer = async () => { for await (const piece of bridge.stream('Olá', { max_tokens: 2 })) assert.ok(piece); };
  for (let crash = 0; crash < 2; crash += 1) { // two crashes, each after a good streamed answer
    await answer();
    const pid = bridge.pid;
    process.kill(pid, 'SIGKILL');
    while (bridge.pid === pid) await new Promise((r) => setTimeout(r, 20));
  }
  await answer(); // only one failure in a row: maxRestarts 1 still allows this restart
  assert.equal(bridge.starts, 3);
});

test('events: stderr lines, exit and restart, instead of a log callback', async (t) => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'crash'], timeoutMs: 5000,
    restart: { minDelayMs: 50 } });
  t.after(() => bridge.close());
  const seen = { stderr: [], exit: [], restart: [], ignored: [] };
  for (const name of Object.keys(seen)) bridge.on(name, (x) => seen[name].push(x));
  await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'exited');
  await assert.rejects(bridge.ask('Olá'), (err) => err.code === 'exited');
  assert.ok(seen.stderr.includes('MemoryError: out of memory'));
  assert.deepEqual(seen.exit.map((e) => e.code), [3, 3]);
  assert.equal(seen.exit[0].error.code, 'exited');
  assert.deepEqual(seen.restart.map((r) => r.attempt), [1]);
  assert.ok(seen.ignored.includes('Loading model... (a stray print)'));
});

test('stdin backpressure: no write while the pipe is full, and nothing lost', async (t) => {
  const bridge = createBridge({ command: process.execPath, args: [FAKE, 'slow'], timeoutMs: 20000 });
  t.after(() => bridge.close());
  await bridge.start();
  const stdin = bridge.child.stdin;
  const write = stdin.write.bind(stdin);
  let overfull = 0;
  let calls = 0;
  stdin.write = (...args) => { calls += 1; if (stdin.writableNeedDrain) overfull += 1; return write(...args); };
  const big = 'Farense '.repeat(16000); // 128 KB a request: 4 MB in all, far above a pipe's buffer
  const replies = await Promise.all(Array.from({ length: 32 }, () => bridge.ask(big)));
  assert.equal(replies.length, 32);
  assert.ok(replies.every((r) => r.response.startsWith('eco: Farense')));
  assert.ok(calls >= 32);
  assert.equal(overfull, 0, 'wrote while stdin asked to wait for drain');
});
