/** The bench's response bodies, by path: what every case must return byte for byte. */
export const BODIES: Readonly<Record<string, Buffer>> = {
  '/1k': Buffer.alloc(1024, 'k'),
  '/100k': Buffer.alloc(100 * 1024, 'c'),
};
