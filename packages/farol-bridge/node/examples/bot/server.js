'use strict';
// A minimal chat endpoint: POST /api/chat {"message": "..."} (or {"messages": [...]}) answers
// {"message": "...", "source": "local" | "fallback"}. The local model answers through one
// long-lived farol-bridge; on failure or timeout the fallback answers: any OpenAI-compatible
// endpoint (OPENAI_BASE_URL, default https://api.openai.com/v1; OPENAI_MODEL; OPENAI_API_KEY).
// Run: FAROL_MODEL=models/tiny-mistral-4bit node examples/bot/server.js
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { createBridge, withFallback, routeByKeywords } = require('../..');

const MAX_BODY = 64 * 1024;

/** An http.Server for POST /api/chat; `keywords` (optional) sends only those topics local. */
/** Without a bridge (the local model is missing), every message goes to the fallback. */
function createChatServer({ bridge, fallback, keywords, askOptions = {} }) {
  const other = async (input) => ({ text: await fallback(input, null), source: 'fallback' });
  const local = bridge ? withFallback(bridge, fallback) : other;
  const answer = bridge && keywords ? routeByKeywords(keywords, local, other) : local;
  return http.createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/api/chat') return send(res, 404, { error: 'not found' });
    let input;
    try {
      input = chatInput(JSON.parse(await readBody(req)));
    } catch (err) {
      return send(res, err.status || 400, { error: err.message });
    }
    try {
      const { text, source } = await answer(input, askOptions);
      send(res, 200, { message: text, source });
    } catch (err) {
      send(res, 502, { error: `no answer: ${err.message}` });
    }
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    const onData = (chunk) => {
      body += chunk;
      if (body.length <= MAX_BODY) return;
      req.off('data', onData); // hold no more of it: the rest of the upload is read and dropped
      body = '';
      reject(Object.assign(new Error('body too large'), { status: 413 }));
    };
    req.on('data', onData);
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function chatInput(body) {
  if (body && typeof body.message === 'string' && body.message.trim()) return body.message;
  if (body && Array.isArray(body.messages) && body.messages.length) return body.messages;
  throw new Error('send {"message": "..."} or {"messages": [...]}');
}

function send(res, status, obj) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(obj));
}

const APOLOGY = 'Desculpe, não consigo responder agora.';

/** A fallback through an OpenAI-compatible chat completions endpoint (OpenAI, Azure, OpenRouter,
 * a local server); a fixed apology when no key and no base URL are set. */
function openaiFallback({ baseUrl = process.env.OPENAI_BASE_URL, apiKey = process.env.OPENAI_API_KEY,
  model = process.env.OPENAI_MODEL || 'gpt-4o-mini' } = {}) {
  const url = `${(baseUrl || 'https://api.openai.com/v1').replace(/\/+$/, '')}/chat/completions`;
  return async (input) => {
    if (!apiKey && !baseUrl) return APOLOGY;
    const messages = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
    const headers = { 'content-type': 'application/json' };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ model, messages }) });
    if (!r.ok) throw new Error(`${url} answered ${r.status}`);
    return (await r.json()).choices[0].message.content;
  };
}

/** The bridge for FAROL_MODEL, or null (with one loud line) when that folder holds no model, so
 * that messages go straight to the fallback instead of starting a failing bridge each time. */
function localBridge(env = process.env, root = path.resolve(__dirname, '..', '..', '..', '..', '..')) {
  const model = env.FAROL_MODEL || path.join(root, 'models', 'tiny-mistral-4bit');
  if (!fs.existsSync(path.join(model, 'config.json'))) {
    console.error(`farol bot: no model at ${model} (FAROL_MODEL); every message goes to the fallback`);
    return null;
  }
  const args = ['serve', '--model', model];
  if (env.FAROL_ADAPTER) args.push('--adapter-path', env.FAROL_ADAPTER);
  const bridge = createBridge({ command: env.FAROL_BRIDGE || path.join(root, '.venv', 'bin', 'farol-bridge'),
    args, timeoutMs: Number(env.FAROL_TIMEOUT_MS || 30000) });
  bridge.on('stderr', (line) => console.error(`[farol-bridge] ${line}`));
  bridge.on('restart', ({ attempt }) => console.error(`[farol-bridge] restarting (start ${attempt + 1})`));
  return bridge;
}

function main() {
  const bridge = localBridge();
  const server = createChatServer({ bridge, fallback: openaiFallback() });
  server.listen(Number(process.env.PORT || 3000), () => console.error(`POST http://localhost:${server.address().port}/api/chat`));
  const stop = () => server.close(() => (bridge ? bridge.close() : Promise.resolve())
    .then(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) main();

module.exports = { createChatServer, openaiFallback, localBridge, readBody };
