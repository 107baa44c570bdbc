import { createServer } from 'node:net';

/**
 * A port free right now on 127.0.0.1, for a process that needs the number before it starts
 * (a child's KANMON_PORT, a helper server's command line). Another process could take it
 * before it is bound, which is rare enough on a test machine to accept.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
