/**
 * A store that accepts connections but never answers (a hung endpoint, a black-holed network)
 * must fail a call with StoreUnavailableError within the client's bounds, not hang the request.
 * And the other way round: a request DynamoDB answers by refusing it as malformed is not an
 * outage, so it must not become StoreUnavailableError (which fails readiness and pages).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, StoreUnavailableError } from '../../runtime/store/errors.js';
import { createDynamoDbClient, createTable, openDynamoStore } from '../../runtime/store/dynamodb/index.js';
import { startDynamoDbLocal } from '../support/dynamodb-local.js';

let silent: Server;
const sockets = new Set<Socket>();
let accepted = 0;

beforeAll(async () => {
  // Reads whatever arrives and never writes a byte back.
  silent = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('data', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

describe('DynamoDB client bounds', () => {
  it('turns a store that never answers into StoreUnavailableError, after a bounded number of attempts', async () => {
    const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const before = accepted;
    // openDynamoStore pings once: the ping must give up on its own (the test's timeout is the hang detector).
    const error = await openDynamoStore({ table: 'kanmon-silent', endpoint }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(String((error as Error).message)).toMatch(/DynamoDB/);
    // Retried, but not endlessly: one connection per attempt.
    expect(accepted - before).toBeGreaterThanOrEqual(1);
    expect(accepted - before).toBeLessThanOrEqual(3);
  }, 20_000);
});

describe('DynamoDB refusing a request', () => {
  it('is a StoreError, not StoreUnavailableError, and the store goes on answering', async () => {
    const local = await startDynamoDbLocal();
    try {
      const client = createDynamoDbClient({ endpoint: local.endpoint });
      await createTable(client, 'kanmon-refusals');
      client.destroy();
      const store = await openDynamoStore({ table: 'kanmon-refusals', endpoint: local.endpoint });
      try {
        const now = Date.now();
        // A key over DynamoDB's 2,048-byte partition key limit: refused with a ValidationException.
        const oversized = await store.users.getByUsername('x'.repeat(5000)).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(oversized).toBeInstanceOf(StoreError);
        expect(oversized).not.toBeInstanceOf(StoreUnavailableError);
        expect(String((oversized as Error).message)).toMatch(/ValidationException/);
        // A number that is not one never leaves the node.
        const nan = await store.documents.put({ kind: 'ha-test', id: 'nan', body: '{}', expiresAt: Number.NaN }, { now }).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(nan).toBeInstanceOf(StoreError);
        expect(nan).not.toBeInstanceOf(StoreUnavailableError);
        // Nothing was written, and the store still works.
        expect(await store.documents.get('ha-test', 'nan', now)).toBeUndefined();
        expect((await store.documents.put({ kind: 'ha-test', id: 'small', body: '{}' }, { now })).version).toBe(1);
      } finally {
        await store.close();
      }
    } finally {
      await local.stop();
    }
  }, 60_000);
});
