// Functions: upload, list, get, invoke.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect, sha256, unique, wasm } from './helpers.mjs';

describe('functions', () => {
  test('upload, list, get and invoke echo', async () => {
    const client = await connect();
    const bytes = await wasm('echo');
    const id = unique('echo');
    const uploaded = await client.uploadFunction(id, bytes);
    assert.equal(uploaded.id, id);
    assert.equal(uploaded.sha256, sha256(bytes));
    assert.equal(uploaded.sizeBytes, bytes.length);
    assert.equal(typeof uploaded.settings, 'object');

    // The same bytes as an ArrayBuffer: nothing changes.
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const again = await client.uploadFunction(id, copy);
    assert.equal(again.sha256, uploaded.sha256);
    assert.equal(again.version, uploaded.version);

    const listed = await client.listFunctions();
    assert.ok(listed.some((f) => f.id === id), `${id} is listed`);

    const got = await client.getFunction(id);
    assert.equal(got.id, id);
    assert.equal(got.sha256, uploaded.sha256);

    const params = { hello: 'world', n: 3, nested: { list: [1, 'two', null], ok: true } };
    const result = await client.invokeFunction(id, params);
    assert.deepEqual(result.output, params);
    assert.ok(Array.isArray(result.logs));
    assert.equal(typeof result.durationMs, 'number');
  });
});
