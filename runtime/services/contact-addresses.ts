/**
 * Where a user can be mailed: one address per user, kept as a named document
 * ('devices-contact', by user id), so certificate links and expiry warnings can reach them.
 * Set by an administrator (CLI or console); every change is audited with before and after.
 */
import { cleanMailAddress } from '../notify/mailer.js';
import type { DocumentStore, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

export const CONTACT_KIND = 'devices-contact';

export class ContactAddressService {
  constructor(
    private readonly deps: {
      documents: DocumentStore;
      audit: AuditLog;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** The user's address, when one is set. */
  async get(userId: string): Promise<string | undefined> {
    const doc = await this.deps.documents.get(CONTACT_KIND, userId, this.now());
    if (!doc) return undefined;
    try {
      return cleanMailAddress((JSON.parse(doc.body) as { email?: unknown }).email);
    } catch {
      return undefined;
    }
  }

  /** Sets (or with `undefined` clears) a user's address. */
  async set(user: Pick<User, 'id' | 'username'>, address: string | undefined, opts: { actor?: string; context?: RequestContext } = {}): Promise<void> {
    const clean = address === undefined ? undefined : cleanMailAddress(address);
    if (address !== undefined && !clean) {
      throw new ServiceError('invalid-input', `an e-mail address is one plain address such as hanako@example.com, got ${JSON.stringify(String(address).slice(0, 80))}`);
    }
    const before = await this.get(user.id);
    if (before === clean) return;
    if (clean) await this.deps.documents.put({ kind: CONTACT_KIND, id: user.id, body: JSON.stringify({ email: clean }) }, { now: this.now() });
    else await this.deps.documents.delete(CONTACT_KIND, user.id);
    await this.deps.audit.record({
      type: 'user.contact',
      result: 'success',
      userId: user.id,
      username: user.username,
      actor: opts.actor ?? 'cli',
      context: opts.context ?? CLI_CONTEXT,
      details: { before: { email: before ?? null }, after: { email: clean ?? null } },
    });
  }
}
