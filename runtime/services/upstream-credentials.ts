/**
 * Upstream credentials: what Kanmon signs in to a legacy upstream with (form login, HTTP
 * Basic, an API header). Kept per credential set (a route's, by default): each user's own,
 * and one shared service account an administrator sets. Sealed with the secret box before
 * they reach the store; the sealed context names the set and owner, so a sealed value copied
 * to another user or set fails to open. Every change is audited; the secret never is.
 */
import { randomBytes } from 'node:crypto';
import { applyUsernameTemplate, UPSTREAM_AUTH_LIMITS, type UpstreamAuthConfig } from '../config/upstream-auth.js';
import type { RouteConfig } from '../config/schema.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { DocumentStore, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';
import { ExpiringCache, boundMs } from '../upstream-auth/expiring-cache.js';

export const CREDENTIAL_KIND = 'upstream-auth-credential';
/** Single-use tokens of the credentials form: a replayed or forged post is refused. */
export const FORM_TOKEN_KIND = 'upstream-auth-form';
const FORM_TOKEN_TTL_MS = 30 * 60_000;

/**
 * Bounds of the per-node cache of opened credentials. An entry holds at most a user name and
 * a secret of UPSTREAM_AUTH_LIMITS' lengths, so the byte bound is what limits memory.
 */
export const CREDENTIAL_CACHE_LIMITS = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 } as const;

/** Whose credentials: one user's, or the set's shared service account. */
export type CredentialOwner = { readonly kind: 'user'; readonly userId: string } | { readonly kind: 'shared' };

/** What may be shown about stored credentials: never the secret. */
export interface CredentialStatus {
  readonly stored: boolean;
  /** The stored upstream user name (not secret; shown so the user knows which account). */
  readonly username?: string;
  readonly updatedAt?: number;
  readonly updatedBy?: string;
  /** Set when the upstream refused these credentials; cleared when they are replaced. */
  readonly rejectedAt?: number;
}

/** Credentials ready to use for one request. */
export interface ResolvedCredentials {
  readonly set: string;
  readonly owner: CredentialOwner;
  /** The upstream user name (from the template when the route has one); '' for an API header. */
  readonly username: string;
  readonly secret: string;
  readonly rejectedAt?: number;
  /** The stored version these came from, so a refusal marks only them (not credentials replaced meanwhile). */
  readonly version: number;
}

interface CredentialBody {
  readonly sealed: string;
  readonly username?: string;
  readonly updatedAt: number;
  readonly updatedBy: string;
  readonly rejectedAt?: number;
}

interface SealedPayload {
  readonly username: string;
  readonly secret: string;
}

/** What the cache keeps per credential set and owner: the opened credentials, or null for "none stored". */
type Opened = { readonly payload: SealedPayload; readonly rejectedAt?: number; readonly version: number } | null;

const CONTROL = /[\u0000-\u001f\u007f]/;

export class UpstreamCredentialService {
  #routeIndex: { readonly from: readonly RouteConfig[]; readonly byId: ReadonlyMap<string, RouteConfig> } | undefined;
  /**
   * Opened credentials (and "none stored") per credential set and owner, so a proxied request
   * costs no store read nor secret-box open. Changes made through this service drop the entry
   * at once; a change made on another node is seen once the entry is older than the bound.
   */
  readonly #cache: ExpiringCache<string, Opened>;

  constructor(
    private readonly deps: {
      readonly documents: DocumentStore;
      readonly secrets: SecretBox;
      readonly audit: AuditLog;
      /** The routes, or a getter of the live ones (runtime/config/live.ts), read at each use. */
      readonly routes: readonly RouteConfig[] | (() => readonly RouteConfig[]);
      readonly now?: () => number;
      /**
       * How long this node trusts credentials it read, in seconds, or a getter of a live
       * setting (Kanmon passes session.cacheSeconds). 0: read the store at every use. @default 0
       */
      readonly cacheSeconds?: number | (() => number);
    },
  ) {
    this.#cache = new ExpiringCache<string, Opened>({
      ttlMs: boundMs(deps.cacheSeconds ?? 0),
      ...CREDENTIAL_CACHE_LIMITS,
      // UTF-16 code units plus the entry's bookkeeping.
      sizeOf: (v) => 2 * ((v?.payload.username.length ?? 0) + (v?.payload.secret.length ?? 0)) + 128,
      now: () => this.now(),
    });
  }

  /** Routes with upstream sign-in by id, as they are now (rebuilt only when the route list was swapped). */
  private get routes(): ReadonlyMap<string, RouteConfig> {
    const from = typeof this.deps.routes === 'function' ? this.deps.routes() : this.deps.routes;
    if (this.#routeIndex?.from !== from) this.#routeIndex = { from, byId: new Map(from.filter((r) => r.upstreamAuth).map((r) => [r.id, r])) };
    return this.#routeIndex.byId;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Routes with upstream sign-in, in config order. */
  routesWithSignIn(): RouteConfig[] {
    return [...this.routes.values()];
  }

  /** A route with upstream sign-in, by id. @throws ServiceError not-found */
  route(routeId: unknown): RouteConfig & { readonly upstreamAuth: UpstreamAuthConfig } {
    const route = typeof routeId === 'string' ? this.routes.get(routeId) : undefined;
    if (!route) throw new ServiceError('not-found', `no route with upstream sign-in is called ${JSON.stringify(String(routeId).slice(0, 64))}`);
    return route as RouteConfig & { upstreamAuth: UpstreamAuthConfig };
  }

  /** Whether users enter their own credentials for this route (not only a shared account). */
  takesUserCredentials(route: RouteConfig): boolean {
    return !!route.upstreamAuth && route.upstreamAuth.credentials !== 'shared';
  }

  /** Whether the user name comes from the route's template (the user enters only the secret). */
  usernameFromTemplate(route: RouteConfig): boolean {
    return route.upstreamAuth?.kind === 'header' || route.upstreamAuth?.usernameTemplate !== undefined;
  }

  async status(route: RouteConfig, owner: CredentialOwner): Promise<CredentialStatus> {
    const doc = await this.read(setOf(route), owner);
    if (!doc) return { stored: false };
    const b = doc.body;
    return { stored: true, ...(b.username !== undefined ? { username: b.username } : {}), updatedAt: b.updatedAt, updatedBy: b.updatedBy, ...(b.rejectedAt !== undefined ? { rejectedAt: b.rejectedAt } : {}) };
  }

  /**
   * Stores credentials for a user or the shared account of a route's set, replacing what was
   * there (and any refusal mark). `username` is ignored where the route derives it.
   */
  async set(
    route: RouteConfig,
    owner: CredentialOwner,
    input: { readonly username?: unknown; readonly secret: unknown },
    opts: { readonly actor: string; readonly user?: User; readonly context?: RequestContext },
  ): Promise<void> {
    const auth = route.upstreamAuth;
    if (!auth) throw new ServiceError('not-found', `route ${route.id} has no upstream sign-in`);
    if (owner.kind === 'user' && auth.credentials === 'shared') throw new ServiceError('forbidden', `route ${route.id} signs in with a shared account only`);
    const secret = checkText(input.secret, 'password', UPSTREAM_AUTH_LIMITS.maxSecretLength, true);
    let username = '';
    if (auth.kind !== 'header' && (owner.kind === 'shared' || auth.usernameTemplate === undefined)) {
      username = checkText(input.username, 'user name', UPSTREAM_AUTH_LIMITS.maxUsernameLength, true);
      // RFC 7617 §2: the user-id of Basic credentials cannot contain a colon.
      if (auth.kind === 'basic' && username.includes(':')) throw new ServiceError('invalid-input', 'a user name for HTTP Basic must not contain ":"');
    }
    const set = auth.credentialSet;
    const payload: SealedPayload = { username, secret };
    const sealed = await this.deps.secrets.seal(new TextEncoder().encode(JSON.stringify(payload)), sealContext(set, owner));
    const body: CredentialBody = { sealed, ...(username ? { username } : {}), updatedAt: this.now(), updatedBy: opts.actor };
    try {
      await this.deps.documents.put({ kind: CREDENTIAL_KIND, id: docId(set, owner), body: JSON.stringify(body) }, { now: this.now() });
    } finally {
      this.#forget(set, owner);
    }
    await this.deps.audit.record({
      type: 'upstream.credentials.set',
      result: 'success',
      actor: opts.actor,
      ...(opts.user ? { userId: opts.user.id, username: opts.user.username } : {}),
      context: opts.context ?? CLI_CONTEXT,
      details: { route: route.id, credentialSet: set, owner: owner.kind },
    });
  }

  /** Removes stored credentials; false when there were none. */
  async clear(route: RouteConfig, owner: CredentialOwner, opts: { readonly actor: string; readonly user?: User; readonly context?: RequestContext }): Promise<boolean> {
    const set = setOf(route);
    let removed: boolean;
    try {
      removed = await this.deps.documents.delete(CREDENTIAL_KIND, docId(set, owner));
    } finally {
      this.#forget(set, owner);
    }
    await this.deps.audit.record({
      type: 'upstream.credentials.clear',
      result: 'success',
      actor: opts.actor,
      ...(opts.user ? { userId: opts.user.id, username: opts.user.username } : {}),
      context: opts.context ?? CLI_CONTEXT,
      details: { route: route.id, credentialSet: set, owner: owner.kind, removed },
    });
    return removed;
  }

  /**
   * The credentials a request of `user` on `route` signs in with, by the route's source
   * (user, shared, user-or-shared), with the user name from the template where there is one.
   * Undefined when none are stored.
   */
  async resolve(route: RouteConfig, user: User): Promise<ResolvedCredentials | undefined> {
    const auth = route.upstreamAuth;
    if (!auth) return undefined;
    const owners: CredentialOwner[] =
      auth.credentials === 'user' ? [{ kind: 'user', userId: user.id }] : auth.credentials === 'shared' ? [{ kind: 'shared' }] : [{ kind: 'user', userId: user.id }, { kind: 'shared' }];
    for (const owner of owners) {
      const opened = await this.#opened(auth.credentialSet, owner);
      if (!opened) continue;
      const { payload } = opened;
      const username = owner.kind === 'user' && auth.usernameTemplate !== undefined ? applyUsernameTemplate(auth.usernameTemplate, user.username) : payload.username;
      return { set: auth.credentialSet, owner, username, secret: payload.secret, version: opened.version, ...(opened.rejectedAt !== undefined ? { rejectedAt: opened.rejectedAt } : {}) };
    }
    return undefined;
  }

  /** The opened credentials of one set and owner: from this node's cache while fresh, else from the store. */
  #opened(set: string, owner: CredentialOwner): Promise<Opened> {
    // One store read per key at a time; a change made here meanwhile (#forget) keeps it from being kept.
    return this.#cache.load(docId(set, owner), async () => {
      const doc = await this.read(set, owner);
      if (!doc) return null;
      const plain = await this.deps.secrets.open(doc.body.sealed, sealContext(set, owner));
      return { payload: JSON.parse(new TextDecoder().decode(plain)) as SealedPayload, version: doc.version, ...(doc.body.rejectedAt !== undefined ? { rejectedAt: doc.body.rejectedAt } : {}) };
    });
  }

  /** A change made on this node: its next request reads the store. */
  #forget(set: string, owner: CredentialOwner): void {
    this.#cache.delete(docId(set, owner));
  }

  /**
   * Marks credentials as refused by the upstream, so Kanmon stops trying them (an upstream
   * may lock an account after a few wrong passwords) until they are replaced. Only marks the
   * version that was used: credentials replaced meanwhile are left alone.
   */
  async markRejected(route: RouteConfig, user: User, used: ResolvedCredentials, detail: string, context?: RequestContext): Promise<void> {
    const current = await this.deps.documents.get(CREDENTIAL_KIND, docId(used.set, used.owner), this.now());
    // Only the version that was refused: credentials replaced since (here or on another node) deserve their own try.
    if (current && current.version === used.version) {
      const body = JSON.parse(current.body) as CredentialBody;
      try {
        await this.deps.documents.put(
          { kind: CREDENTIAL_KIND, id: current.id, body: JSON.stringify({ ...body, rejectedAt: this.now() }) },
          { now: this.now(), expectedVersion: current.version },
        );
      } catch {
        // Replaced or removed meanwhile: the new credentials deserve their own try.
      }
    }
    this.#forget(used.set, used.owner);
    await this.deps.audit.record({
      type: 'upstream.signin',
      result: 'failure',
      reason: 'credentials-rejected',
      userId: user.id,
      username: user.username,
      ...(context ? { context } : {}),
      details: { route: route.id, credentialSet: used.set, owner: used.owner.kind, detail: detail.slice(0, 200) },
    });
  }

  /** Whether a user may use a route at all (its allow lists), so nobody sees or sets credentials for another's app. */
  routeAllows(route: RouteConfig, user: User): boolean {
    const { allowUsers, allowGroups } = route.policy;
    if (allowUsers.length === 0 && allowGroups.length === 0) return true;
    return allowUsers.includes(user.username) || user.groups.some((g) => allowGroups.includes(g));
  }

  /** A single-use token for one credentials form, bound to the Kanmon session that was shown it. */
  async issueFormToken(sessionId: string): Promise<string> {
    const token = randomBytes(24).toString('base64url');
    await this.deps.documents.put({ kind: FORM_TOKEN_KIND, id: token, body: JSON.stringify({ sessionId }), expiresAt: this.now() + FORM_TOKEN_TTL_MS }, { now: this.now(), expectedVersion: 0 });
    return token;
  }

  /** Uses up a form token; false when it is unknown, expired, used, or another session's. */
  async consumeFormToken(sessionId: string, token: unknown): Promise<boolean> {
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{32}$/.test(token)) return false;
    const doc = await this.deps.documents.get(FORM_TOKEN_KIND, token, this.now());
    if (!doc || (JSON.parse(doc.body) as { sessionId?: string }).sessionId !== sessionId) return false;
    try {
      return await this.deps.documents.delete(FORM_TOKEN_KIND, token, doc.version);
    } catch {
      // Another request used it first.
      return false;
    }
  }

  private async read(set: string, owner: CredentialOwner): Promise<{ body: CredentialBody; version: number } | undefined> {
    const doc = await this.deps.documents.get(CREDENTIAL_KIND, docId(set, owner), this.now());
    if (!doc) return undefined;
    return { body: JSON.parse(doc.body) as CredentialBody, version: doc.version };
  }
}

function setOf(route: RouteConfig): string {
  if (!route.upstreamAuth) throw new ServiceError('not-found', `route ${route.id} has no upstream sign-in`);
  return route.upstreamAuth.credentialSet;
}

function docId(set: string, owner: CredentialOwner): string {
  return owner.kind === 'user' ? `${set}/user/${owner.userId}` : `${set}/shared`;
}

function sealContext(set: string, owner: CredentialOwner): string {
  return `upstream-credential:${docId(set, owner)}`;
}

function checkText(value: unknown, what: string, max: number, required: boolean): string {
  if (value === undefined || value === null || value === '') {
    if (required) throw new ServiceError('invalid-input', `the ${what} is required`);
    return '';
  }
  if (typeof value !== 'string') throw new ServiceError('invalid-input', `the ${what} must be text`);
  if (value.length > max) throw new ServiceError('invalid-input', `the ${what} must be at most ${max} characters`);
  // Line breaks and NUL would let a value escape its header (Basic, API header) or form field.
  if (CONTROL.test(value)) throw new ServiceError('invalid-input', `the ${what} must not contain control characters`);
  return value;
}
