// Update semantics of encryptedParams: a masked entry sent back keeps the stored
// secret, an omitted one is removed, the mask is never accepted as a new secret.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrellisError } from '../dist/index.js';
import { MASKED, once, recordingClient, sha256, stepOf, unique, wasm } from './helpers.mjs';

const ready = once(async () => {
  const recording = await recordingClient();
  const functionId = unique('digest');
  await recording.client.uploadFunction(functionId, await wasm('digest'));
  return { ...recording, functionId };
});

describe('updateOrchestration', () => {
  test('keeps a secret sent back masked, removes an omitted one, refuses the mask as a value', async () => {
    const { client, responses, functionId } = await ready();
    const created = await client.createOrchestration({
      name: unique('secrets'),
      steps: [
        {
          type: 'compute',
          functionId,
          encryptedParams: {
            A: { value: 'alpha-secret', encrypt: true },
            B: { value: 'bravo-secret', encrypt: true },
          },
        },
      ],
    });
    const stepId = created.steps[0].id;
    assert.ok(stepId, 'the server assigns a step id');

    // Read, keep A as read back (masked), drop B, send the orchestration back as read.
    const current = await client.getOrchestration(created.id);
    assert.deepEqual(current.steps[0].encryptedParams, { A: MASKED, B: MASKED });
    const [step] = current.steps;
    const updated = await client.updateOrchestration(current.id, {
      ...current,
      steps: [{ ...step, encryptedParams: { A: step.encryptedParams.A } }],
    });
    assert.equal(updated.version, current.version + 1);
    assert.deepEqual(updated.steps[0].encryptedParams, { A: MASKED });

    const got = await client.getOrchestration(created.id);
    assert.equal(got.steps[0].id, stepId);
    assert.deepEqual(got.steps[0].encryptedParams, { A: MASKED });

    const started = await client.startRun(created.id);
    const run = await client.waitRun(started.id, { timeoutMs: 30_000 });
    assert.equal(run.status, 'completed', JSON.stringify(run));
    const output = stepOf(run, stepId).output;
    assert.equal(output.A, sha256('alpha-secret'), 'A kept its stored value');
    assert.ok(!('B' in output), `B was removed, yet the step got ${JSON.stringify(output)}`);

    // The mask is never a secret.
    await assert.rejects(
      client.updateOrchestration(created.id, {
        name: got.name,
        steps: [{ ...got.steps[0], encryptedParams: { A: { value: '********', encrypt: true } } }],
      }),
      (error) => {
        assert.ok(error instanceof TrellisError, String(error));
        assert.equal(error.status, 400);
        assert.match(error.code, /^[a-z][a-z0-9_]*$/);
        return true;
      },
    );
    const after = await client.getOrchestration(created.id);
    assert.equal(after.version, got.version, 'a refused update changes nothing');
    assert.deepEqual(after.steps[0].encryptedParams, { A: MASKED });

    for (const { method, url, text } of responses) {
      assert.ok(!text.includes('alpha-secret') && !text.includes('bravo-secret'), `plaintext in the response to ${method} ${url}`);
    }
  });
});
