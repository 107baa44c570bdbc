import type { FastifyInstance } from 'fastify';
import type { PortalKit } from '../kit.js';

/** The portal's scripts and styles, and the JWKS backends verify X-Kanmon-Jwt with. */
export function registerStaticRoutes(app: FastifyInstance, kit: PortalKit): void {
  app.get('/.kanmon/static/:file', async (req, reply) => {
    const file = kit.deps.statics.get((req.params as { file: string }).file);
    if (!file) return kit.sendError(reply, req, 404, 'not-found', 'error.notFound');
    reply.header('cache-control', 'public, max-age=300').header('etag', file.etag);
    if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
    return reply.type(file.contentType).send(file.body);
  });

  app.get('/.kanmon/jwks.json', async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=300').header('access-control-allow-origin', '*');
    return reply.type('application/jwk-set+json').send(kit.services.signingKeys.jwks());
  });
}
