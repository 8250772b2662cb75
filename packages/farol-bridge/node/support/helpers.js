'use strict';
// Where the tests find Python, farol-bridge and a tiny model (built once per test file).
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const venvPython = path.join(ROOT, '.venv', 'bin', 'python');
const PYTHON = process.env.FAROL_PYTHON || (fs.existsSync(venvPython) ? venvPython : 'python3');
const BRIDGE = path.join(path.dirname(PYTHON), 'farol-bridge');

const EMBEDDED = path.join(ROOT, 'models', 'tiny-mistral-4bit');
let model = process.env.FAROL_TEST_MODEL
  || (fs.existsSync(path.join(EMBEDDED, 'config.json')) ? EMBEDDED : null);

/** A 4-bit tiny model: FAROL_TEST_MODEL, models/tiny-mistral-4bit (`invoke demo` makes it), or
 * a fresh one made by make-tiny-model.py in a temp folder, removed when the tests end. */
function tinyModel() {
  if (!model) {
    const out = execFileSync(PYTHON, [path.join(__dirname, 'make-tiny-model.py')],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    model = out.trim().split('\n').pop();
    const made = path.dirname(model);
    process.on('exit', () => fs.rmSync(made, { recursive: true, force: true }));
  }
  return model;
}

/** createBridge options for the real bridge on the tiny model. */
function bridgeOptions({ args = [], ...extra } = {}) {
  return { command: BRIDGE, args: ['serve', '--model', tinyModel(), ...args], timeoutMs: 60000,
    ...extra };
}

module.exports = { ROOT, PYTHON, BRIDGE, tinyModel, bridgeOptions };
