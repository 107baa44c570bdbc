/**
 * A store that accepts connections but never answers (a hung endpoint, a black-holed network)
 * must fail a call with StoreUnavailableError within the client's bounds, not hang the request.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../runtime/store/errors.js';
import { openDynamoStore } from '../../runtime/store/dynamodb/index.js';

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
