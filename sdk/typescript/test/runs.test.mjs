// Runs: waiting on an approval, listing by status, approve, reject, cancel, a wait
// that times out, and deleting the orchestration.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrellisError } from '../dist/index.js';
import { connect, once, stepOf, unique, wasm } from './helpers.mjs';

const WAIT = { timeoutMs: 30_000 };

// One orchestration for the tests below: an approval, then a compute step.
const ready = once(async () => {
  const client = await connect();
  const functionId = unique('echo');
  await client.uploadFunction(functionId, await wasm('echo'));
  const orchestration = await client.createOrchestration({
    name: unique('approve-then-echo'),
    steps: [
      { id: 'approve', type: 'approval' },
      { id: 'after', type: 'compute', functionId },
    ],
  });
  return { client, orchestration };
});

describe('runs', () => {
  test('approve: waiting, listed as waiting, then completed with the decision as output', async () => {
    const { client, orchestration } = await ready();
    const started = await client.startRun(orchestration.id, { input: { n: 1 } });
    assert.equal(typeof started.id, 'string');
    assert.ok(['pending', 'running', 'waiting'].includes(started.status), started.status);

    const waiting = await client.waitRun(started.id, WAIT);
    assert.equal(waiting.status, 'waiting', JSON.stringify(waiting));
    assert.equal(stepOf(waiting, 'approve').status, 'waiting');

    const listed = await client.listRuns(orchestration.id, { status: 'waiting' });
    assert.ok(listed.some((run) => run.id === started.id), 'listed among the waiting runs');
    assert.ok(listed.every((run) => run.status === 'waiting'), JSON.stringify(listed));

    const decided = await client.approveStep(started.id, 'approve', { comment: 'ship it' });
    assert.equal(decided.id, started.id);

    const done = await client.waitRun(started.id, WAIT);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const approval = stepOf(done, 'approve');
    assert.equal(approval.status, 'succeeded');
    assert.equal(approval.output.approved, true);
    assert.equal(approval.output.comment, 'ship it');
    assert.equal(stepOf(done, 'after').output.n, 1, 'the compute step got the run input');

    const stillWaiting = await client.listRuns(orchestration.id, { status: 'waiting' });
    assert.ok(!stillWaiting.some((run) => run.id === started.id), 'no longer waiting');
    const limited = await client.listRuns(orchestration.id, { limit: 1 });
    assert.equal(limited.length, 1);
  });

  test('reject: the run fails', async () => {
    const { client, orchestration } = await ready();
    const started = await client.startRun(orchestration.id);
    assert.equal((await client.waitRun(started.id, WAIT)).status, 'waiting');
    await client.rejectStep(started.id, 'approve', { comment: 'not now' });
    const done = await client.waitRun(started.id, WAIT);
    assert.equal(done.status, 'failed', JSON.stringify(done));
    const approval = stepOf(done, 'approve');
    assert.equal(approval.output.approved, false);
    assert.equal(approval.output.comment, 'not now');
  });

  test('cancel: the run is cancelled', async () => {
    const { client, orchestration } = await ready();
    const started = await client.startRun(orchestration.id);
    assert.equal((await client.waitRun(started.id, WAIT)).status, 'waiting');
    const cancelled = await client.cancelRun(started.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal((await client.getRun(started.id)).status, 'cancelled');
  });

  test('waitRun returns the run as it is when its timeout elapses first', async () => {
    const { client } = await ready();
    const delayed = await client.createOrchestration({
      name: unique('delay'),
      steps: [{ id: 'pause', type: 'delay', delayMs: 60_000 }],
    });
    const started = await client.startRun(delayed.id);
    const sentAt = Date.now();
    const run = await client.waitRun(started.id, { timeoutMs: 500 });
    const elapsed = Date.now() - sentAt;
    assert.ok(['pending', 'running'].includes(run.status), run.status);
    assert.ok(elapsed >= 400 && elapsed < 10_000, `waited ${elapsed} ms`);
    assert.equal((await client.cancelRun(started.id)).status, 'cancelled');
    await client.deleteOrchestration(delayed.id);
  });

  test('deleteOrchestration: reading it afterwards is a 404', async () => {
    const { client, orchestration } = await ready();
    assert.equal(await client.deleteOrchestration(orchestration.id), undefined);
    await assert.rejects(client.getOrchestration(orchestration.id), (error) => {
      assert.ok(error instanceof TrellisError, String(error));
      assert.equal(error.status, 404);
      return true;
    });
  });
});
