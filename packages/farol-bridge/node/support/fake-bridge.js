'use strict';
// A misbehaving stand-in for farol-bridge. Mode (argv[2]):
//   noisy  - garbage and non-protocol lines around correct replies
//   crash  - ready, then on the first request writes to stderr and exits with code 3
//   slow   - like noisy, but reads nothing from stdin for its first second (a full pipe)
const readline = require('node:readline');

const mode = process.argv[2];
const out = (s) => process.stdout.write(`${s}\n`);

out('Loading model... (a stray print)');
out('[1, 2, 3]');
out('{"broken": ');
out(JSON.stringify({ v: 1, event: 'ready', model: 'fake', adapter: null, pid: process.pid }));
if (mode === 'slow') process.stdin.pause();
setTimeout(() => process.stdin.resume(), mode === 'slow' ? 1000 : 0);
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  if (mode === 'crash') {
    process.stderr.write('Traceback (most recent call last):\nMemoryError: out of memory\n');
    process.exit(3);
  }
  if (req.op === 'shutdown') process.exit(0);
  out('not json at all');
  out(JSON.stringify({ v: 1, id: 'nobody-asked', status: 'ok', response: 'stray' }));
  out('null');
  out(JSON.stringify({ v: 1, id: req.id, event: 'token', text: 'eco: ' }));
  out(JSON.stringify({ v: 1, id: req.id, status: 'ok', response: `eco: ${String(req.prompt).slice(0, 40)}`,
    finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 1 },
    timing: { prompt_tps: 1, generation_tps: 1, seconds: 0 } }));
});
