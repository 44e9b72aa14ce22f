// The announcement's SDK snippet, run as written against a real server: the secret is
// stored, never shown back, and reaches the function.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MASKED, once, recordingClient, sha256, stepOf, wasm } from './helpers.mjs';

const ready = once(async () => {
  const recording = await recordingClient();
  // The snippet's function: digest proves what the step received without revealing it.
  await recording.client.uploadFunction('fn-create-repo', await wasm('digest'));
  return recording;
});

describe('announcement snippet', () => {
  test('createOrchestration with encryptedParams: stored, masked on every read, decrypted for the step', async () => {
    const { client, responses } = await ready();
    const sent = responses.length;
    await client.createOrchestration({ name: 'Provision Repo', steps: [{ type: 'compute', functionId: 'fn-create-repo', encryptedParams: { API_KEY: { value: 'sk_live_...', encrypt: true } } }] });
    const answer = responses[sent];
    assert.equal(responses.length, sent + 1, 'one request for the create');
    assert.equal(answer.method, 'POST');
    assert.equal(answer.status, 201);
    const created = JSON.parse(answer.text);

    assert.equal(created.name, 'Provision Repo');
    assert.equal(created.steps.length, 1);
    const [step] = created.steps;
    assert.equal(typeof step.id, 'string', 'the server assigns a step id');
    assert.notEqual(step.id, '');
    assert.equal(step.type, 'compute');
    assert.equal(step.functionId, 'fn-create-repo');
    assert.deepEqual(step.encryptedParams, { API_KEY: MASKED });

    const got = await client.getOrchestration(created.id);
    assert.equal(got.steps[0].id, step.id, 'the assigned id is stable');
    assert.deepEqual(got.steps[0].encryptedParams, { API_KEY: MASKED });

    const listed = (await client.listOrchestrations()).find((o) => o.id === created.id);
    assert.ok(listed, 'the new orchestration is listed');
    assert.deepEqual(listed.steps[0].encryptedParams, { API_KEY: MASKED });

    const started = await client.startRun(created.id);
    assert.equal(typeof started.id, 'string');
    const run = await client.waitRun(started.id, { timeoutMs: 30_000 });
    assert.equal(run.status, 'completed', JSON.stringify(run));
    const output = stepOf(run, step.id).output;
    assert.equal(output.API_KEY, sha256('sk_live_...'), 'the function received the decrypted secret');
    const listedRuns = await client.listRuns(created.id);
    assert.ok(listedRuns.some((r) => r.id === started.id), 'the run is listed');
    const reread = await client.getRun(started.id);

    for (const value of [created, got, listed, started, run, listedRuns, reread]) {
      assert.ok(!JSON.stringify(value).includes('sk_live_...'), `plaintext in ${JSON.stringify(value)}`);
    }
    for (const { method, url, text } of responses) {
      assert.ok(!text.includes('sk_live_...'), `plaintext in the response to ${method} ${url}`);
    }
  });
});
