'use strict';
// Client for `farol-bridge serve`: spawn it once, send JSON Lines, match replies by id.
// No dependencies beyond Node >= 18. Protocol: docs/bridge-protocol.md.

const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const readline = require('node:readline');

const STDERR_LINES = 20;
const MAX_LINE_BYTES = 1 << 20; // the bridge answers a longer line with an id-less too_long
const OPTION_KEYS = ['max_tokens', 'temperature', 'top_p', 'repetition_penalty', 'stop', 'seed'];
const DEFAULT_RESTART = { minDelayMs: 250, maxDelayMs: 10000, maxRestarts: Infinity };

/** An error from the bridge or about it; `code` is the protocol's error code, or one of
 * 'timeout', 'aborted', 'exited', 'start_failed', 'closed', 'down'. */
class BridgeError extends Error {
  constructor(message, { code, id, exitCode, signal, stderr } = {}) {
    super(message);
    this.name = 'BridgeError';
    Object.assign(this, { code, id, exitCode, signal, stderr });
  }
}

/** One long-lived bridge process. Events: 'stderr' (line), 'exit' ({code, signal, error}),
 * 'restart' ({attempt, delayMs}) and 'ignored' (a stdout line that is not a protocol object). */
class Bridge extends EventEmitter {
  constructor({ command, args = [], cwd, env, timeoutMs = 60000, startTimeoutMs = 120000,
    restart = true }) {
    super();
    if (!command) throw new TypeError('createBridge needs a command (the farol-bridge path)');
    this.command = command;
    this.args = args;
    this.spawnOptions = { cwd, env: env || process.env, stdio: ['pipe', 'pipe', 'pipe'] };
    this.timeoutMs = timeoutMs;
    this.startTimeoutMs = startTimeoutMs;
    this.restart = restart === false ? null : { ...DEFAULT_RESTART, ...(restart === true ? {} : restart) };
    this.child = null;
    this.outbox = []; // lines waiting for stdin to drain (backpressure)
    this.ready = null; // promise of the current child's ready line
    this.pending = new Map(); // id -> { resolve, reject, onToken }
    this.nextId = 1;
    this.starts = 0;
    this.failures = 0;
    this.diedAt = 0;
    this.closed = false;
    this.stderrTail = [];
  }

  /** Spawn the bridge if it is not running, and wait for its ready line. */
  start() {
    if (this.closed) return Promise.reject(new BridgeError('bridge is closed', { code: 'closed' }));
    if (this.ready) return this.ready;
    if (this.starts > 0 && !this.restart) {
      return Promise.reject(new BridgeError('bridge is down and restart is off', { code: 'down' }));
    }
    if (this.starts > 0 && this.failures > this.restart.maxRestarts) {
      return Promise.reject(new BridgeError(`bridge failed ${this.failures} times; giving up`,
        { code: 'down' }));
    }
    if (this.starts > 0) {
      this.emit('restart', { attempt: this.starts, delayMs: this._backoff() });
    }
    this.ready = this._delay().then(() => {
      if (this.closed) throw new BridgeError('bridge is closed', { code: 'closed' }); // during the wait
      return this._spawn();
    });
    this.ready.catch(() => {}); // callers see the rejection; an unwatched one must not crash
    return this.ready;
  }

  _backoff() {
    if (this.failures === 0) return 0;
    const { minDelayMs, maxDelayMs } = this.restart;
    return Math.max(0, this.diedAt + Math.min(maxDelayMs, minDelayMs * 2 ** (this.failures - 1))
      - Date.now());
  }

  _delay() {
    const left = this._backoff();
    return left > 0 ? new Promise((r) => setTimeout(r, left)) : Promise.resolve();
  }

  _spawn() {
    return new Promise((resolve, reject) => {
      this.starts += 1;
      this.stderrTail = [];
      const child = spawn(this.command, this.args, this.spawnOptions); // no shell, ever
      this.child = child;
      this.outbox = [];
      child.stdin.on('drain', () => this._flush(child));
      const timer = setTimeout(() => {
        reject(new BridgeError(`bridge sent no ready line within ${this.startTimeoutMs} ms`,
          { code: 'start_failed', stderr: this._tail() }));
        child.kill('SIGKILL');
      }, this.startTimeoutMs);
      child.on('error', (err) => this._died(child, null, null, err));
      child.on('exit', (code, signal) => this._died(child, code, signal));
      child.stdin.on('error', () => {}); // EPIPE after a crash: the exit handler reports it
      readline.createInterface({ input: child.stderr }).on('line', (l) => this._stderr(l));
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const msg = this._parse(line);
        if (msg && msg.event === 'ready') { clearTimeout(timer); resolve(msg); }
        else if (msg) this._dispatch(msg);
      });
      child.once('exit', () => { clearTimeout(timer); reject(this._exitError); });
    });
  }

  _stderr(line) {
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
    this.emit('stderr', line);
  }

  _tail() { return this.stderrTail.join('\n'); }

  _parse(line) {
    try {
      const msg = JSON.parse(line);
      if (msg && typeof msg === 'object' && !Array.isArray(msg)) return msg;
    } catch { /* reported below */ }
    this.emit('ignored', line.slice(0, 200));
    return null;
  }

  _dispatch(msg) {
    const entry = this.pending.get(msg.id);
    if (!entry) return; // a reply to a request that already timed out
    if (msg.event === 'token') {
      if (entry.onToken && typeof msg.text === 'string') entry.onToken(msg.text);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.status === 'ok') entry.resolve(msg);
    else {
      const err = msg.error && typeof msg.error === 'object' ? msg.error : {};
      entry.reject(new BridgeError(`bridge error (${err.code || 'unknown'}): ${err.message || ''}`,
        { code: err.code || 'internal', id: msg.id }));
    }
  }

  _died(child, code, signal, spawnError) {
    if (child !== this.child) return;
    const tail = this._tail();
    const how = spawnError ? `could not start (${spawnError.message})`
      : `exited with code ${code}${signal ? ` (signal ${signal})` : ''}`;
    const err = new BridgeError(`farol bridge ${how}${tail ? `; last stderr lines:\n${tail}` : ''}`,
      { code: spawnError ? 'start_failed' : 'exited', exitCode: code, signal, stderr: tail });
    this._exitError = err;
    this.child = null;
    this.outbox = [];
    this.ready = null;
    if (!this.closed) { this.failures += 1; this.diedAt = Date.now(); }
    for (const entry of this.pending.values()) entry.reject(err);
    this.pending.clear();
    if (spawnError) child.emit('exit', null, null); // let the start promise reject too
    this.emit('exit', { code, signal, error: err });
  }

  _send(msg) {
    if (!this.child) throw new BridgeError('bridge is not running', { code: 'down' });
    const line = JSON.stringify(msg);
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) { // refused here: its reply would carry no id
      throw new BridgeError(`request is longer than ${MAX_LINE_BYTES} bytes`, { code: 'too_long', id: msg.id });
    }
    this._write(`${line}\n`);
  }

  // stdin.write returns false when its buffer is full: hold later lines until 'drain'.
  _write(line) {
    if (this.outbox.length || this.child.stdin.writableNeedDrain) this.outbox.push(line);
    else this.child.stdin.write(line);
  }

  _flush(child) {
    while (child === this.child && this.outbox.length && !child.stdin.writableNeedDrain) {
      child.stdin.write(this.outbox.shift());
    }
  }

  /** Send one request; resolves with the final reply line. `onToken` receives streamed text;
   * `signal` (an AbortSignal, say AbortSignal.timeout(ms)) cancels the request. */
  async request(op, fields = {}, { timeoutMs = this.timeoutMs, onToken, signal,
    id = this.nextId++ } = {}) {
    if (signal?.aborted) throw aborted(id, signal);
    await this.start();
    // close() may have sent shutdown while we waited: the bridge would never read this request.
    if (this.closed) throw new BridgeError('bridge is closed', { code: 'closed', id });
    if (signal?.aborted) throw aborted(id, signal);
    return new Promise((resolve, reject) => {
      const giveUp = (err) => {
        if (!this.pending.has(id)) return;
        this.pending.get(id).reject(err);
        this.pending.delete(id);
        if (op === 'generate') this._cancel(id);
      };
      const timer = timeoutMs > 0 ? setTimeout(() => giveUp(new BridgeError(
        `request ${id} timed out after ${timeoutMs} ms`, { code: 'timeout', id })), timeoutMs) : null;
      const onAbort = () => giveUp(aborted(id, signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (fn) => (value) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn(value);
      };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject), onToken });
      try { this._send({ v: 1, id, op, ...fields }); } catch (err) { this.pending.get(id)?.reject(err); this.pending.delete(id); }
    });
  }

  _cancel(target) {
    try { this._send({ v: 1, id: `cancel-${target}`, op: 'cancel', target }); } catch { /* gone */ }
  }

  /** Generate an answer; resolves with the reply ({response, finish_reason, usage, timing}). */
  async ask(promptOrMessages, options = {}) {
    const reply = await this.request('generate', generateFields(promptOrMessages, options), options);
    this.failures = 0; // a working bridge resets the restart backoff
    return reply;
  }

  /** Generate with streaming: an async iterator of text pieces. Breaking out cancels. */
  async *stream(promptOrMessages, options = {}) {
    const queue = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const push = () => { if (wake) { wake(); wake = null; } };
    const fields = { ...generateFields(promptOrMessages, options), stream: true };
    const id = this.nextId++;
    const onToken = (t) => { queue.push(t); push(); };
    const reply = this.request('generate', fields, { ...options, id, onToken });
    reply.then(() => {
      this.failures = 0; // a streamed answer resets the restart backoff too, as in ask()
      finished = true;
      push();
    }, (err) => { failure = err; push(); });
    try {
      while (true) {
        if (queue.length) yield queue.shift();
        else if (failure) throw failure;
        else if (finished) return;
        else await new Promise((r) => { wake = r; });
      }
    } finally {
      if (!finished && !failure && this.pending.has(id)) this._cancel(id);
    }
  }

  ping(options) { return this.request('ping', {}, options); }

  info(options) { return this.request('info', {}, options); }

  /** Ask the bridge to finish its work and exit; kill it if it does not within `graceMs`. */
  async close({ graceMs = 10000 } = {}) {
    this.closed = true;
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    try { this._send({ v: 1, id: 'shutdown', op: 'shutdown' }); child.stdin.end(); } catch { /* gone */ }
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** The running child's pid, or null. */
  get pid() { return this.child ? this.child.pid : null; }
}

function aborted(id, signal) {
  const err = new BridgeError(`request ${id} was aborted`, { code: 'aborted', id });
  err.cause = signal.reason;
  return err;
}

function generateFields(promptOrMessages, options) {
  const fields = typeof promptOrMessages === 'string' ? { prompt: promptOrMessages }
    : { messages: promptOrMessages };
  for (const key of OPTION_KEYS) if (options[key] !== undefined) fields[key] = options[key];
  return fields;
}

/** Spawn the bridge once and return a client; see Bridge for the methods. */
function createBridge(options) {
  const bridge = new Bridge(options);
  bridge.start().catch(() => {}); // start loading now; the first request waits for it
  return bridge;
}

/** The text a user sees from a prompt or a message list (the last user turn). */
function userText(promptOrMessages) {
  if (typeof promptOrMessages === 'string') return promptOrMessages;
  const users = (promptOrMessages || []).filter((m) => m && m.role === 'user');
  return users.length ? String(users[users.length - 1].content) : '';
}

/** An answer function that tries the local bridge and calls `fallbackFn(promptOrMessages, error)`
 * (for example OpenAI) when it fails, times out or gives an answer `accept` rejects.
 * Resolves with {text, source: 'local' | 'fallback', error}. */
function withFallback(bridge, fallbackFn, { accept = (text) => text.trim().length > 0 } = {}) {
  return async (promptOrMessages, options = {}) => {
    let error = null;
    try {
      const reply = await bridge.ask(promptOrMessages, options);
      if (accept(reply.response)) return { text: reply.response, source: 'local', error: null };
      error = new BridgeError('the local answer was rejected', { code: 'rejected' });
    } catch (err) {
      error = err;
    }
    return { text: await fallbackFn(promptOrMessages, error), source: 'fallback', error };
  };
}

/** Route by topic: prompts naming one of `keywords` (case and accents ignored) go to `local`,
 * the rest to `other`; when `local` throws, `other` answers instead. */
function routeByKeywords(keywords, local, other) {
  const fold = (s) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
  const words = keywords.map(fold);
  return async (promptOrMessages, ...rest) => {
    const text = fold(userText(promptOrMessages));
    if (words.some((k) => text.includes(k))) {
      try { return await local(promptOrMessages, ...rest); } catch { /* other answers */ }
    }
    return other(promptOrMessages, ...rest);
  };
}

module.exports = { createBridge, Bridge, BridgeError, withFallback, routeByKeywords, userText };
