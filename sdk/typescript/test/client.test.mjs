// The client's own behaviour, against a scripted local HTTP server: what it sends
// (auth, encoding, bodies), how it maps answers and failures to TrellisError, how
// waitRun long-polls and how lists follow cursors. The API itself is tested against
// a real server in the other files.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { TrellisClient, TrellisError } from '../dist/index.js';

/** A server that records each request and answers with the next scripted reply. */
function scriptedServer() {
  const requests = [];
  let replies = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const reply = replies.shift() ?? { status: 500, json: { error: { code: 'unscripted', message: 'no reply scripted' } } };
      if (reply.hang) return; // never answers
      const text = reply.text ?? (reply.json === undefined ? '' : JSON.stringify(reply.json));
      res.writeHead(reply.status ?? 200, reply.json === undefined ? {} : { 'content-type': 'application/json' });
      res.end(text);
    });
  });
  return {
    requests,
    script(...next) {
      replies = next;
      requests.length = 0;
    },
    async start() {
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${server.address().port}`;
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

const run = (status) => ({ id: 'r1', orchestrationId: 'o1', orchestrationVersion: 1, status, input: null, createdAt: '', updatedAt: '' });

describe('TrellisClient against a scripted server', () => {
  const server = scriptedServer();
  let baseUrl;
  let client;

  before(async () => {
    baseUrl = await server.start();
    client = new TrellisClient({ baseUrl: `${baseUrl}/`, token: 'tok-123' });
  });
  after(() => server.stop());
  beforeEach(() => server.script());

  test('sends the bearer token, encodes path ids, sends JSON', async () => {
    server.script({ status: 200, json: { id: 'a/b c', steps: [] } });
    await client.updateOrchestration('a/b c', {
      id: 'a/b c',
      version: 3,
      createdAt: 'x',
      updatedAt: 'y',
      name: 'n',
      steps: [{ type: 'approval' }],
    });
    const [request] = server.requests;
    assert.equal(request.method, 'PUT');
    assert.equal(request.url, '/v1/orchestrations/a%2Fb%20c');
    assert.equal(request.headers.authorization, 'Bearer tok-123');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(request.body), { name: 'n', steps: [{ type: 'approval' }] }, 'read-only fields are not sent');

    await assert.rejects(client.getRun('..'), TypeError, 'dots cannot climb out of their segment');
    await assert.rejects(client.deleteOrchestration('.'), TypeError);
  });

  test('uploads bytes as application/wasm from a Buffer, a Uint8Array or an ArrayBuffer', async () => {
    const bytes = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 2, 3]);
    const fn = { id: 'f', version: 1 };
    server.script({ status: 201, json: fn }, { status: 200, json: fn }, { status: 200, json: fn }, { status: 200, json: fn });
    assert.deepEqual(await client.uploadFunction('f', bytes), fn);
    await client.uploadFunction('f', Buffer.from(bytes));
    await client.uploadFunction('f', bytes.buffer);
    await client.uploadFunction('f', new DataView(bytes.buffer, 1, 3));
    for (const request of server.requests) {
      assert.equal(request.method, 'PUT');
      assert.equal(request.url, '/v1/functions/f');
      assert.equal(request.headers['content-type'], 'application/wasm');
    }
    assert.deepEqual([...server.requests[2].body], [...bytes]);
    assert.deepEqual([...server.requests[3].body], [0x61, 0x73, 0x6d]);
  });

  test('startRun, approveStep and rejectStep send their bodies; delete resolves to undefined on 204', async () => {
    server.script(
      { status: 202, json: { id: 'r1', status: 'pending' } },
      { status: 202, json: { id: 'r2', status: 'pending' } },
      { status: 200, json: run('running') },
      { status: 200, json: run('failed') },
      { status: 204 },
    );
    assert.deepEqual(await client.startRun('o1', { input: { a: 1 } }), { id: 'r1', status: 'pending' });
    await client.startRun('o1');
    await client.approveStep('r1', 'step/1', { comment: 'ok' });
    await client.rejectStep('r1', 'step/1');
    assert.equal(await client.deleteOrchestration('o1'), undefined);
    const [s1, s2, approve, reject, del] = server.requests;
    assert.deepEqual(JSON.parse(s1.body), { input: { a: 1 } });
    assert.deepEqual(JSON.parse(s2.body), {});
    assert.equal(approve.url, '/v1/runs/r1/steps/step%2F1/approve');
    assert.deepEqual(JSON.parse(approve.body), { comment: 'ok' });
    assert.equal(reject.url, '/v1/runs/r1/steps/step%2F1/reject');
    assert.deepEqual(JSON.parse(reject.body), {});
    assert.equal(del.method, 'DELETE');
  });

  test('an API error becomes a TrellisError with its status, code, message and details', async () => {
    server.script({
      status: 422,
      json: { error: { code: 'function_error', message: 'it failed', retryable: false, logs: [] } },
    });
    await assert.rejects(client.invokeFunction('f', {}), (error) => {
      assert.ok(error instanceof TrellisError);
      assert.ok(error instanceof Error);
      assert.equal(error.name, 'TrellisError');
      assert.equal(error.status, 422);
      assert.equal(error.code, 'function_error');
      assert.equal(error.message, 'it failed');
      assert.equal(error.details.retryable, false);
      return true;
    });
  });

  test('an error without the API error body is http_<status>', async () => {
    server.script({ status: 502, text: '<html>bad gateway</html>' });
    await assert.rejects(client.getRun('r1'), (error) => {
      assert.equal(error.status, 502);
      assert.equal(error.code, 'http_502');
      return true;
    });
  });

  test('a success body that is not JSON is invalid_response', async () => {
    server.script({ status: 200, text: 'hello' });
    await assert.rejects(client.getRun('r1'), { code: 'invalid_response', status: 200 });
  });

  test('no answer within timeoutMs is code timeout', async () => {
    server.script({ hang: true });
    const quick = new TrellisClient({ baseUrl, token: 't', timeoutMs: 200 });
    await assert.rejects(quick.getRun('r1'), (error) => {
      assert.ok(error instanceof TrellisError);
      assert.equal(error.status, 0);
      assert.equal(error.code, 'timeout');
      assert.match(error.message, /200 ms/);
      return true;
    });
  });

  test('waitRun long-polls with waitMs until the run settles', async () => {
    server.script({ json: run('pending') }, { json: run('running') }, { json: run('waiting') });
    const waited = await client.waitRun('r1', { timeoutMs: 120_000 });
    assert.equal(waited.status, 'waiting');
    assert.equal(server.requests.length, 3);
    for (const request of server.requests) {
      const url = new URL(request.url, baseUrl);
      assert.equal(url.pathname, '/v1/runs/r1');
      const waitMs = Number(url.searchParams.get('waitMs'));
      assert.ok(waitMs > 0 && waitMs <= 60_000, `waitMs=${waitMs}`);
    }
  });

  test('waitRun returns the run as it is when timeoutMs elapses; 0 reads it once', async () => {
    server.script(...Array.from({ length: 20 }, () => ({ json: run('running') })));
    const startedAt = Date.now();
    const waited = await client.waitRun('r1', { timeoutMs: 600 });
    const elapsed = Date.now() - startedAt;
    assert.equal(waited.status, 'running');
    assert.ok(elapsed >= 550 && elapsed < 3_000, `waited ${elapsed} ms`);
    // An early answer with the run still active does not make the loop spin.
    assert.ok(server.requests.length <= 4, `${server.requests.length} polls`);

    server.script({ json: run('running') });
    assert.equal((await client.waitRun('r1', { timeoutMs: 0 })).status, 'running');
    assert.equal(server.requests.length, 1);
    assert.equal(new URL(server.requests[0].url, baseUrl).searchParams.get('waitMs'), '0');
  });

  test('lists follow nextCursor; listRuns passes status and stops at limit', async () => {
    server.script(
      { json: { data: [{ id: 'o1' }, { id: 'o2' }], nextCursor: 'c1' } },
      { json: { data: [{ id: 'o3' }], nextCursor: null } },
    );
    assert.deepEqual((await client.listOrchestrations()).map((o) => o.id), ['o1', 'o2', 'o3']);
    assert.equal(server.requests[0].url, '/v1/orchestrations');
    assert.equal(server.requests[1].url, '/v1/orchestrations?cursor=c1');

    server.script({ json: { data: [run('waiting'), run('waiting')], nextCursor: 'more' } });
    const runs = await client.listRuns('o1', { status: 'waiting', limit: 2 });
    assert.equal(runs.length, 2);
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0].url, '/v1/orchestrations/o1/runs?status=waiting&limit=2');

    server.script({ json: { data: [{ id: 'f1' }] } });
    assert.deepEqual(await client.listFunctions(), [{ id: 'f1' }]);
  });

  test('a closed port is unreachable, with a message naming trellis serve and the URL', async () => {
    const port = Number(new URL(baseUrl).port);
    const probe = createServer();
    await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closed = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
    assert.notEqual(closed, port);
    const offline = new TrellisClient({ baseUrl: `http://127.0.0.1:${closed}`, token: 'secret-token' });
    await assert.rejects(offline.listFunctions(), (error) => {
      assert.ok(error instanceof TrellisError);
      assert.equal(error.status, 0);
      assert.equal(error.code, 'unreachable');
      assert.match(error.message, /trellis serve/);
      assert.ok(error.message.includes(`http://127.0.0.1:${closed}`));
      assert.ok(!error.message.includes('secret-token'));
      return true;
    });
  });

  test('invalid arguments are refused before any request', async () => {
    assert.throws(() => new TrellisClient({ baseUrl: 'localhost:8080', token: 't' }), TypeError);
    assert.throws(() => new TrellisClient({ baseUrl: 'http://127.0.0.1:1', token: '' }), TypeError);
    assert.throws(() => new TrellisClient({ baseUrl: 'http://127.0.0.1:1', token: 't', timeoutMs: 0 }), TypeError);
    await assert.rejects(client.getOrchestration(''), TypeError);
    await assert.rejects(client.waitRun('r1', { timeoutMs: -1 }), TypeError);
    assert.equal(server.requests.length, 0);
  });
});
