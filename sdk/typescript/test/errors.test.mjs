// Every failure is a TrellisError carrying the API's status and code, or a status 0
// code that says why no answer came.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { TrellisClient, TrellisError } from '../dist/index.js';
import { connect, serverEnv } from './helpers.mjs';

/** A loopback port that nothing listens on: bound, then released. */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('errors', () => {
  test('an unknown orchestration is a 404 with a snake_case code', async () => {
    const client = await connect();
    await assert.rejects(client.getOrchestration('does-not-exist'), (error) => {
      assert.ok(error instanceof TrellisError, String(error));
      assert.equal(error.status, 404);
      assert.match(error.code, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
      assert.ok(error.message.length > 0);
      return true;
    });
  });

  test('a wrong token is a 401', async () => {
    const env = await serverEnv();
    const client = new TrellisClient({ baseUrl: env.baseUrl, token: 'not-the-token' });
    await assert.rejects(client.listOrchestrations(), (error) => {
      assert.ok(error instanceof TrellisError, String(error));
      assert.equal(error.status, 401);
      assert.match(error.code, /^[a-z][a-z0-9_]*$/);
      assert.ok(!error.message.includes('not-the-token'), 'the token is not echoed');
      return true;
    });
  });

  test('a server that is not running is unreachable, and the message says what to check', async () => {
    const env = await serverEnv();
    const baseUrl = `http://127.0.0.1:${await closedPort()}`;
    const client = new TrellisClient({ baseUrl, token: env.token });
    await assert.rejects(client.getOrchestration('anything'), (error) => {
      assert.ok(error instanceof TrellisError, String(error));
      assert.equal(error.status, 0);
      assert.equal(error.code, 'unreachable');
      assert.ok(error.message.includes('trellis serve'), error.message);
      assert.ok(error.message.includes(baseUrl), error.message);
      assert.ok(!error.message.includes(env.token), 'the token is not echoed');
      return true;
    });
  });
});
