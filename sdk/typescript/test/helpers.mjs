// Shared by the integration tests (not a test file itself: `npm test` runs
// test/*.test.mjs). They talk to a real Trellis server; nothing here is mocked.

import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrellisClient } from '../dist/index.js';

const REQUIRED = ['TRELLIS_URL', 'TRELLIS_API_TOKEN', 'TRELLIS_FUNCTIONS_DIR'];

/**
 * The server to test against, from the environment. Throws (so every test using it
 * fails, never skips) when a variable is missing or the functions folder is not there.
 */
export async function serverEnv() {
  const missing = REQUIRED.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(', ')} not set. These tests run against a real Trellis server: start one ` +
        '(e.g. `trellis serve --listen 127.0.0.1:0 --data-dir "$(mktemp -d)"`), then set ' +
        'TRELLIS_URL to its address (http://127.0.0.1:PORT), TRELLIS_API_TOKEN to its token and ' +
        'TRELLIS_FUNCTIONS_DIR to the folder holding echo.wasm and digest.wasm ' +
        '(functions/target/wasm32-wasip2/release). See README.md, "Running the tests".',
    );
  }
  const functionsDir = process.env.TRELLIS_FUNCTIONS_DIR;
  const info = await stat(functionsDir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new Error(`TRELLIS_FUNCTIONS_DIR=${functionsDir} is not a directory (build the examples: functions/target/wasm32-wasip2/release)`);
  }
  return { baseUrl: process.env.TRELLIS_URL, token: process.env.TRELLIS_API_TOKEN, functionsDir };
}

/** A client for the test server. */
export async function connect(options = {}) {
  const { baseUrl, token } = await serverEnv();
  return new TrellisClient({ baseUrl, token, ...options });
}

/**
 * A client that also records the raw text of every response it receives, to check
 * what the server sent rather than what the SDK made of it.
 */
export async function recordingClient() {
  const responses = [];
  const record = async (url, init) => {
    const response = await fetch(url, init);
    const text = await response.text();
    responses.push({ method: init.method, url, status: response.status, text });
    return { ok: response.ok, status: response.status, statusText: response.statusText, text: async () => text };
  };
  return { client: await connect({ fetch: record }), responses };
}

/** The bytes of an example component, e.g. `wasm('digest')`. */
export async function wasm(name) {
  const { functionsDir } = await serverEnv();
  const path = join(functionsDir, `${name}.wasm`);
  try {
    return await readFile(path);
  } catch (error) {
    throw new Error(`${path} is missing (build the example functions): ${error.message}`);
  }
}

/** A suffix that keeps ids unique when the tests rerun against one server. */
export function unique(prefix) {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Lowercase hex SHA-256, as the digest function computes it for a string. */
export function sha256(value) {
  return createHash('sha256').update(value).digest('hex');
}

/** The step record of a run by step id. */
export function stepOf(run, stepId) {
  const step = run.steps?.find((s) => s.id === stepId);
  if (!step) throw new Error(`run ${run.id} has no step ${stepId}: ${JSON.stringify(run.steps)}`);
  return step;
}

/** The masked form of every secret on read. */
export const MASKED = Object.freeze({ value: '********', encrypted: true });

/**
 * Shared setup for the tests of one file, run once on first use. Each test awaits it
 * (rather than a `before` hook) so that a missing server fails every test with the
 * reason, instead of cancelling them.
 */
export function once(setup) {
  let promise;
  return () => (promise ??= setup());
}
