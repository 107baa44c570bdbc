import { createHash, randomBytes } from 'node:crypto';
import type { SessionConfig } from '../config/schema.js';
import { setBounded } from '../cache/bounded-map.js';
import type { PolicySubject } from '../policy/decide.js';
import type { Session, SessionPasskey, Store, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { withPasskeyAmr } from './passkey-evidence.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

/** `__Host-` pins the cookie to this host, path "/" and Secure (RFC 6265bis §4.1.3.2). */
export const SESSION_COOKIE = '__Host-kanmon-session';

/**
 * A session the hot path may use: the stored session with its user, both current within the
 * cache bound. `session.lastSeenAt` is the activity before the current request, so per-route
 * idle limits measure the gap this request ends.
 */
export interface ActiveSession {
  readonly session: Session;
  readonly user: User;
}

/** What the access policy sees of a signed-in session (the gateway and the console decide alike). */
export function policySubjectOf(active: ActiveSession): PolicySubject {
  return {
    userId: active.user.id,
    username: active.user.username,
    groups: active.user.groups,
    disabled: active.user.disabled,
    authMethods: active.session.authMethods,
    ...(active.session.passkey ? { passkey: active.session.passkey } : {}),
    session: { createdAt: active.session.createdAt, lastSeenAt: active.session.lastSeenAt },
  };
}

interface CacheEntry {
  readonly value: ActiveSession | undefined;
  readonly fetchedAt: number;
}

/** The cookie value's digest is the store key, so a leaked store cannot be replayed as cookies. */
export function sessionIdFromToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Sessions: opaque random tokens in a `__Host-` cookie, stored server-side by digest, with
 * idle and absolute expiry. `resolve` serves the hot path from a bounded in-process cache;
 * an entry is re-read from the store once it is older than `cacheSeconds`, which bounds how
 * long a revocation on another node can go unnoticed.
 */
export class SessionService {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<ActiveSession | undefined>>();
  private readonly digests = new Map<string, string>();
  private readonly endListeners: Array<(sessionId: string, context: RequestContext) => Promise<void>> = [];
  readonly #config: () => SessionConfig;
  readonly #tightestIdleSeconds: number;

  constructor(
    private readonly store: Store,
    /** The settings, or a getter of them when they change while Kanmon runs (read at each use). */
    config: SessionConfig | (() => SessionConfig),
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
    /** The shortest idle limit anywhere (a route's may be tighter than the global one). @default config.idleTimeoutSeconds */
    tightestIdleSeconds: number = Infinity,
  ) {
    this.#config = typeof config === 'function' ? config : () => config;
    this.#tightestIdleSeconds = tightestIdleSeconds;
  }

  private get config(): SessionConfig {
    return this.#config();
  }

  /**
   * lastSeenAt is written at most this often per session, so reads do not become writes: a
   * tenth of the tightest idle limit, so that limit is measured to within 10 %.
   */
  private get touchEveryMs(): number {
    return Math.min(60_000, (Math.min(this.#tightestIdleSeconds, this.config.idleTimeoutSeconds) * 1000) / 10);
  }

  /**
   * Starts a new session: always a fresh id (session fixation defence, regenerated at every
   * login), and the session the browser had before, if any, is ended.
   *
   * `evidence.passkey` is the passkey that proved the 'passkey' factor now; the RFC 8176 'hwk' or
   * 'swk' method is added from it. A step-up by another factor that carries 'passkey' over from
   * the user's previous session carries that session's passkey evidence with it.
   */
  async start(
    user: User,
    authMethods: readonly string[],
    context: RequestContext,
    previousToken?: string,
    evidence: { readonly passkey?: SessionPasskey } = {},
  ): Promise<{ token: string; cookie: string; setCookie: string; session: Session }> {
    let passkey = evidence.passkey;
    if (previousToken && TOKEN_SHAPE.test(previousToken)) {
      const oldId = sessionIdFromToken(previousToken);
      if (!passkey && authMethods.includes('passkey')) {
        const previous = await this.store.sessions.get(oldId);
        if (previous && previous.userId === user.id && previous.authMethods.includes('passkey')) passkey = previous.passkey;
      }
      await this.store.sessions.delete(oldId);
      this.cache.delete(oldId);
    }
    const token = randomBytes(32).toString('base64url');
    const time = this.now();
    const methods = withPasskeyAmr([...new Set(authMethods)], passkey);
    const session: Session = {
      id: sessionIdFromToken(token),
      userId: user.id,
      authMethods: methods,
      createdAt: time,
      lastSeenAt: time,
      absoluteExpiresAt: time + this.config.absoluteTimeoutSeconds * 1000,
      ip: context.ip,
      userAgent: context.userAgent.slice(0, 512),
      ...(passkey && methods.includes('passkey') ? { passkey } : {}),
    };
    await this.store.sessions.create(session);
    this.remember(session.id, { session, user });
    return { token, cookie: `${SESSION_COOKIE}=${token}`, setCookie: this.setCookieHeader(token), session };
  }

  setCookieHeader(token: string): string {
    // No Max-Age: a browser-session cookie; the server enforces idle and absolute expiry.
    return `${SESSION_COOKIE}=${token}; Path=/; Secure; HttpOnly; SameSite=Lax`;
  }

  clearCookieHeader(): string {
    return `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`;
  }

  /** The active session for a cookie value, or undefined when unknown, expired, revoked or its user is disabled. */
  async resolve(token: string | undefined): Promise<ActiveSession | undefined> {
    if (!token || !TOKEN_SHAPE.test(token)) return undefined;
    const id = this.digestOf(token);
    const time = this.now();
    const cached = this.cache.get(id);
    let active: ActiveSession | undefined;
    if (cached && time - cached.fetchedAt < this.config.cacheSeconds * 1000) {
      active = cached.value;
    } else {
      active = await this.load(id);
    }
    if (!active) return undefined;
    if (!this.isLive(active.session, time)) {
      this.cache.delete(id);
      return undefined;
    }
    if (time - active.session.lastSeenAt >= this.touchEveryMs) {
      const touched: ActiveSession = { session: { ...active.session, lastSeenAt: time }, user: active.user };
      this.remember(id, touched, this.cache.get(id)?.fetchedAt ?? time);
      // Not awaited: the request need not wait for bookkeeping; a lost touch only shortens idle life.
      this.store.sessions.touch(id, time).catch(() => undefined);
      // The caller gets the session as it was before this request (see ActiveSession).
    }
    return active;
  }

  /**
   * The store key of a cookie value. Hashing it on every proxied request was a measurable
   * share of the hot path, so digests of recently seen tokens are remembered (bounded like the
   * session cache; the process sees these tokens on every request anyway).
   */
  private digestOf(token: string): string {
    const known = this.digests.get(token);
    if (known !== undefined) return known;
    const id = sessionIdFromToken(token);
    setBounded(this.digests, token, id, this.config.cacheMaxEntries);
    return id;
  }

  private isLive(session: Session, time: number): boolean {
    return time < session.absoluteExpiresAt && time - session.lastSeenAt < this.config.idleTimeoutSeconds * 1000;
  }

  /** One store read per session id at a time, however many requests arrive together. */
  private load(id: string): Promise<ActiveSession | undefined> {
    const pending = this.inflight.get(id);
    if (pending) return pending;
    const p = (async () => {
      const session = await this.store.sessions.get(id);
      let value: ActiveSession | undefined;
      if (session) {
        const user = await this.store.users.getById(session.userId);
        if (user && !user.disabled) value = { session, user };
      }
      if (value) this.remember(id, value);
      else this.cache.delete(id);
      return value;
    })().finally(() => this.inflight.delete(id));
    this.inflight.set(id, p);
    return p;
  }

  private remember(id: string, value: ActiveSession, fetchedAt = this.now()): void {
    setBounded(this.cache, id, { value, fetchedAt }, this.config.cacheMaxEntries);
  }

  /**
   * Told when a session ends by sign-out, by revocation (one or all of a user's) or because its
   * user was disabled (e.g. to sign out of upstream applications too). Awaited; a listener that
   * fails does not stop the sign-out.
   */
  onEnd(listener: (sessionId: string, context: RequestContext) => Promise<void>): void {
    this.endListeners.push(listener);
  }

  private async notifyEnd(sessionId: string, context: RequestContext): Promise<void> {
    for (const listener of this.endListeners) await listener(sessionId, context).catch(() => undefined);
  }

  /** Ends the session behind a cookie value (sign-out). */
  async end(token: string, context: RequestContext, user?: User): Promise<void> {
    if (!TOKEN_SHAPE.test(token)) return;
    const id = sessionIdFromToken(token);
    await this.store.sessions.delete(id);
    this.cache.delete(id);
    await this.notifyEnd(id, context);
    await this.audit.record({ type: 'session.signout', result: 'success', context, ...(user ? { userId: user.id, username: user.username } : {}) });
  }

  listForUser(userId: string): Promise<Session[]> {
    return this.store.sessions.listByUser(userId);
  }

  /** Revokes one session of a user by its id (as listed). */
  async revoke(user: User, sessionId: string, actor: string, context: RequestContext = CLI_CONTEXT): Promise<void> {
    const session = await this.store.sessions.get(sessionId);
    if (!session || session.userId !== user.id) throw new ServiceError('not-found', 'no such session');
    await this.store.sessions.delete(sessionId);
    this.cache.delete(sessionId);
    await this.notifyEnd(sessionId, context);
    await this.audit.record({ type: 'session.revoke', result: 'success', userId: user.id, username: user.username, actor, context, details: { count: 1 } });
  }

  /** Revokes every session of a user, except `exceptId` (for "sign out my other sessions"). */
  async revokeAll(user: User, actor: string, context: RequestContext = CLI_CONTEXT, exceptId?: string): Promise<number> {
    const count = await this.endAllOf(user.id, context, exceptId);
    await this.audit.record({ type: 'session.revoke', result: 'success', userId: user.id, username: user.username, actor, context, details: { count, keptCurrent: !!exceptId } });
    return count;
  }

  /**
   * Ends every session of a user but `exceptId` without an audit event of its own (the caller's
   * event says why: revoke all, user disabled), and tells the end listeners about each one, so
   * upstream sign-ins end with them. Returns how many sessions were deleted.
   */
  async endAllOf(userId: string, context: RequestContext, exceptId?: string): Promise<number> {
    // Listed first: deleteByUser only counts. A session started in between is deleted without
    // its listeners being told; whatever it left (an upstream jar) expires with it.
    const ids = this.endListeners.length > 0 ? (await this.store.sessions.listByUser(userId)).map((s) => s.id).filter((id) => id !== exceptId) : [];
    const count = await this.store.sessions.deleteByUser(userId, exceptId);
    for (const [id, entry] of this.cache) {
      if (entry.value?.user.id === userId && id !== exceptId) this.cache.delete(id);
    }
    await Promise.all(ids.map((id) => this.notifyEnd(id, context)));
    return count;
  }

  /** Sessions this node has seen that are still live: the ActiveSessions metric, per node. */
  activeCount(): number {
    const time = this.now();
    let n = 0;
    for (const entry of this.cache.values()) if (entry.value && this.isLive(entry.value.session, time)) n++;
    return n;
  }

  /** Drops every cached entry (tests and config reloads). */
  clearCache(): void {
    this.cache.clear();
  }
}
