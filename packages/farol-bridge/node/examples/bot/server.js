'use strict';
// A minimal chat endpoint: POST /api/chat {"message": "..."} (or {"messages": [...]}) answers
// {"message": "...", "source": "local" | "fallback"}. The local model answers through one
// long-lived farol-bridge; on failure or timeout the fallback (OpenAI when OPENAI_API_KEY is set)
// answers. Run: FAROL_MODEL=models/tiny-mistral-4bit node examples/bot/server.js
const http = require('node:http');
const path = require('node:path');
const { createBridge, withFallback, routeByKeywords } = require('../..');

const MAX_BODY = 64 * 1024;

/** An http.Server for POST /api/chat; `keywords` (optional) sends only those topics local. */
function createChatServer({ bridge, fallback, keywords, askOptions = {} }) {
  const local = withFallback(bridge, fallback);
  const other = async (input) => ({ text: await fallback(input, null), source: 'fallback' });
  const answer = keywords ? routeByKeywords(keywords, local, other) : local;
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

/** OpenAI chat completions when OPENAI_API_KEY is set; otherwise a fixed apology. */
async function openaiFallback(input) {
  if (!process.env.OPENAI_API_KEY) return 'Desculpe, não consigo responder agora.';
  const messages = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
  const r = await fetch('https://api.openai.com/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
    body: JSON.stringify({ model: process.env.OPENAI_MODEL || 'gpt-4o-mini', messages }),
  });
  if (!r.ok) throw new Error(`OpenAI answered ${r.status}`);
  return (await r.json()).choices[0].message.content;
}

function main() {
  const root = path.resolve(__dirname, '..', '..', '..', '..', '..');
  const args = ['serve', '--model', process.env.FAROL_MODEL || path.join(root, 'models', 'tiny-mistral-4bit')];
  if (process.env.FAROL_ADAPTER) args.push('--adapter-path', process.env.FAROL_ADAPTER);
  const bridge = createBridge({
    command: process.env.FAROL_BRIDGE || path.join(root, '.venv', 'bin', 'farol-bridge'),
    args, timeoutMs: Number(process.env.FAROL_TIMEOUT_MS || 30000), log: console.error,
  });
  const server = createChatServer({ bridge, fallback: openaiFallback });
  server.listen(Number(process.env.PORT || 3000), () => console.error(`POST http://localhost:${server.address().port}/api/chat`));
  const stop = () => server.close(() => bridge.close().then(() => process.exit(0)));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) main();

module.exports = { createChatServer, openaiFallback, readBody };
