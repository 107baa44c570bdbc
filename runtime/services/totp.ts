import { randomBytes } from 'node:crypto';
import { generateURI, ScureBase32Plugin, verify as verifyOtp } from 'otplib';
import QRCode from 'qrcode';
import type { TotpConfig } from '../config/schema.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Store, User } from '../store/types.js';
import type { AuditLog } from './audit-log.js';
import { ServiceError } from './errors.js';
import { CLI_CONTEXT, type RequestContext } from './request-context.js';

/**
 * The parameters every common authenticator app (Google Authenticator, Microsoft
 * Authenticator, WinAuth) assumes when a URI or a typed secret names none: HMAC-SHA-1,
 * 6 digits, 30 s steps from T0 = 0 (RFC 6238 §4, §5.2; RFC 4226 §5.3). They are fixed on
 * purpose: Microsoft Authenticator and WinAuth ignore other values and would show wrong codes.
 */
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** 160 bits, the shared-secret length RFC 4226 §4 (R6) recommends, and the HMAC-SHA-1 block. */
export const TOTP_SECRET_BYTES = 20;
/** An unconfirmed secret older than this is no longer offered or accepted; the user starts again. */
export const TOTP_ENROLLMENT_TTL_MS = 30 * 60_000;

const base32 = new ScureBase32Plugin();
const CODE_SHAPE = /^[0-9]{6}$/;

/** The SecretBox context of a user's TOTP secret: a sealed secret copied to another user fails to open. */
export function totpSecretContext(userId: string): string {
  return `totp:${userId}`;
}

/**
 * A submitted code in canonical form, or undefined when it is not exactly six ASCII digits.
 * Spaces are dropped because apps show "123 456"; anything else (letters, other digit
 * scripts, 5 or 7 digits) is malformed. Long input is refused before any work is done on it.
 */
export function parseTotpCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 32) return undefined;
  const code = input.replace(/ /g, '');
  return CODE_SHAPE.test(code) ? code : undefined;
}

/** The time step T = floor((t - T0) / X) of RFC 6238 §4.2, with T0 = 0 and X = 30 s. */
export function totpStepAt(epochMs: number): number {
  return Math.floor(epochMs / 1000 / TOTP_PERIOD_SECONDS);
}

/**
 * The time step whose code `code` is, within ±`toleranceSteps` of the step at `atMs`, or
 * undefined. RFC 6238 §5.2 allows this window for clock drift and transmission delay; otplib
 * takes it in seconds, and a tolerance of k periods covers exactly the steps T-k … T+k
 * whatever the position inside the current step.
 */
export async function matchTotpStep(secret: Uint8Array, code: string, atMs: number, toleranceSteps: number): Promise<number | undefined> {
  const result = await verifyOtp({
    secret,
    token: code,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epoch: Math.floor(atMs / 1000),
    epochTolerance: toleranceSteps * TOTP_PERIOD_SECONDS,
  });
  // otplib's result type is shared with HOTP; a TOTP match always carries the matched step.
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

/** Base32 (RFC 4648 §6, no padding) in groups of four, as people type it into WinAuth or a desktop app. */
export function groupSecret(secretBase32: string): string {
  return secretBase32.replace(/(.{4})(?=.)/g, '$1 ');
}

/** The issuer as the Key URI Format wants it: no colon, which separates issuer and account in the label. */
function cleanIssuer(issuer: string): string {
  return issuer.replace(/:/g, ' ').trim() || 'Kanmon';
}

/** The otpauth:// URI apps scan: label `issuer:username`, and the issuer again as a parameter. */
export function totpUri(issuer: string, username: string, secret: Uint8Array): string {
  // Algorithm, digits and period are left out: every app defaults to SHA-1/6/30, and some
  // (Microsoft Authenticator) refuse or mis-handle URIs that spell them out.
  return generateURI({ issuer: cleanIssuer(issuer), label: username, secret: base32.encode(secret) });
}

/** What the enrollment page shows: the QR code as an SVG element, and the same secret as text. */
export interface TotpEnrollmentView {
  readonly uri: string;
  /** An <svg> element (paths only, no script or style) of the otpauth URI. */
  readonly qrSvg: string;
  /** The Base32 secret in groups of four. */
  readonly secretText: string;
  readonly issuer: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface TotpStatus {
  /** Confirmed with a valid code, so it counts as a sign-in method. */
  readonly enabled: boolean;
  readonly confirmedAt?: number;
  /** An enrollment was started and not yet confirmed (and has not expired). */
  readonly pending: boolean;
}

/** Why a code was refused; only ever shown to the audit log, never to the client. */
export type TotpRefusal = 'malformed-code' | 'not-enrolled' | 'wrong-code' | 'replayed-code';

export type TotpCheck = { readonly ok: true; readonly step: number } | { readonly ok: false; readonly reason: TotpRefusal };

/**
 * Authenticator-app codes (TOTP, RFC 6238): enrollment with confirmation, verification with
 * a replay guard shared through the store, and reset.
 *
 * Every verification does the same work whether or not the user exists or has a secret: a
 * store read, one SecretBox open and one otplib verification, against a dummy secret when
 * there is no real one. So neither the answer nor the work done tells who is enrolled.
 */
export class TotpService {
  private dummySealed?: Promise<string>;

  constructor(
    private readonly deps: {
      store: Store;
      secrets: SecretBox;
      audit: AuditLog;
      config: TotpConfig;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async status(user: User): Promise<TotpStatus> {
    const record = await this.deps.store.totp.get(user.id);
    if (!record) return { enabled: false, pending: false };
    if (record.confirmed) return { enabled: true, ...(record.confirmedAt !== undefined ? { confirmedAt: record.confirmedAt } : {}), pending: false };
    return { enabled: false, pending: record.createdAt + TOTP_ENROLLMENT_TTL_MS > this.now() };
  }

  /** True when the user has a confirmed secret: TOTP then counts as another way in. */
  async isEnabled(userId: string): Promise<boolean> {
    return (await this.deps.store.totp.get(userId))?.confirmed === true;
  }

  /**
   * Starts an enrollment: a new random secret, sealed and stored unconfirmed. A confirmed
   * secret is never replaced this way (that would silently break the user's app); it must be
   * reset first. An earlier unconfirmed one is replaced.
   */
  async beginEnrollment(user: User, context: RequestContext): Promise<void> {
    const existing = await this.deps.store.totp.get(user.id);
    if (existing?.confirmed) throw new ServiceError('conflict', 'an authenticator app is already set up; reset it first');
    const secret = randomBytes(TOTP_SECRET_BYTES);
    const sealedSecret = await this.deps.secrets.seal(secret, totpSecretContext(user.id));
    secret.fill(0);
    await this.deps.store.totp.put({ userId: user.id, sealedSecret, confirmed: false, createdAt: this.now() });
    await this.deps.audit.record({ type: 'totp.enroll', result: 'success', userId: user.id, username: user.username, method: 'otp', context });
  }

  /** The pending enrollment to show, or undefined when there is none (or it expired, or is confirmed). */
  async pendingEnrollment(user: User): Promise<TotpEnrollmentView | undefined> {
    const record = await this.deps.store.totp.get(user.id);
    if (!record || record.confirmed) return undefined;
    const expiresAt = record.createdAt + TOTP_ENROLLMENT_TTL_MS;
    if (expiresAt <= this.now()) return undefined;
    const secret = await this.deps.secrets.open(record.sealedSecret, totpSecretContext(user.id));
    const issuer = cleanIssuer(this.deps.config.issuer);
    const uri = totpUri(issuer, user.username, secret);
    const secretText = groupSecret(base32.encode(secret));
    secret.fill(0);
    // Error correction M: readable from a laptop screen by any phone camera, at a size that fits.
    const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2, width: 224 });
    return { uri, qrSvg, secretText, issuer, createdAt: record.createdAt, expiresAt };
  }

  /**
   * Confirms a pending enrollment with a code from the app, proving the app and server agree
   * on secret and clock before TOTP counts. The code's step is claimed like at login, so the
   * confirming code cannot then be replayed to sign in.
   */
  async confirmEnrollment(user: User, code: unknown, context: RequestContext): Promise<void> {
    const record = await this.deps.store.totp.get(user.id);
    const pending = !!record && !record.confirmed && record.createdAt + TOTP_ENROLLMENT_TTL_MS > this.now();
    const check = await this.check(user.id, code, pending ? 'pending' : 'none', record?.sealedSecret);
    if (!check.ok) {
      await this.deps.audit.record({ type: 'totp.confirm', result: 'failure', reason: pending ? check.reason : 'not-enrolled', userId: user.id, username: user.username, method: 'otp', context });
      throw new ServiceError('invalid-input', `the code was not accepted (${pending ? check.reason : 'no pending enrollment'})`);
    }
    await this.deps.store.totp.confirm(user.id, this.now());
    await this.deps.audit.record({ type: 'totp.confirm', result: 'success', userId: user.id, username: user.username, method: 'otp', context });
  }

  /**
   * Checks a sign-in code for a user (or for nobody, when the username is unknown: `userId`
   * undefined). Success claims the matched step in the store, atomically across nodes, so
   * the same code is accepted once (RFC 6238 §5.2: the verifier must not accept the second
   * attempt of an OTP after a successful validation).
   */
  async verifyForLogin(userId: string | undefined, code: unknown): Promise<TotpCheck> {
    const record = userId ? await this.deps.store.totp.get(userId) : await this.deps.store.totp.get(DUMMY_USER_ID);
    const confirmed = !!userId && record?.confirmed === true;
    return this.check(userId ?? DUMMY_USER_ID, code, confirmed ? 'confirmed' : 'none', record?.sealedSecret);
  }

  private async check(userId: string, code: unknown, state: 'confirmed' | 'pending' | 'none', sealedSecret: string | undefined): Promise<TotpCheck> {
    const parsed = parseTotpCode(code);
    const real = state !== 'none' && sealedSecret !== undefined;
    const secret = real ? await this.deps.secrets.open(sealedSecret, totpSecretContext(userId)) : await this.openDummy();
    // A malformed code is still run (as a fixed well-formed stand-in) so that its refusal
    // costs the same as a wrong code's.
    const time = this.now();
    const step = await matchTotpStep(secret, parsed ?? '000000', time, this.deps.config.toleranceSteps);
    secret.fill(0);
    if (!real) return { ok: false, reason: parsed ? 'not-enrolled' : 'malformed-code' };
    if (!parsed) return { ok: false, reason: 'malformed-code' };
    if (step === undefined) return { ok: false, reason: 'wrong-code' };
    // The claim outlives every instant at which this step could still match (RFC 6238 §5.2 window).
    const expiresAt = (step + this.deps.config.toleranceSteps + 2) * TOTP_PERIOD_SECONDS * 1000;
    const claimed = await this.deps.store.totp.claimStep(userId, step, expiresAt);
    return claimed ? { ok: true, step } : { ok: false, reason: 'replayed-code' };
  }

  /** A secret nobody holds, sealed once per process so the dummy path also pays for an open. */
  private async openDummy(): Promise<Uint8Array> {
    this.dummySealed ??= this.deps.secrets.seal(randomBytes(TOTP_SECRET_BYTES), DUMMY_CONTEXT);
    let sealed: string;
    try {
      sealed = await this.dummySealed;
    } catch (err) {
      this.dummySealed = undefined;
      throw err;
    }
    return this.deps.secrets.open(sealed, DUMMY_CONTEXT);
  }

  /**
   * Removes the user's authenticator app. From the account page (`actor` the user) it is
   * refused while TOTP is the user's only way in; an administrator (CLI) may always reset.
   * Returns whether there was anything to remove.
   */
  async reset(user: User, opts: { actor?: string; context?: RequestContext; keepLastFactor?: boolean } = {}): Promise<boolean> {
    const context = opts.context ?? CLI_CONTEXT;
    const record = await this.deps.store.totp.get(user.id);
    if (opts.keepLastFactor && record?.confirmed) {
      const passkeys = await this.deps.store.credentials.listByUser(user.id);
      if (passkeys.length === 0) {
        await this.deps.audit.record({ type: 'totp.reset', result: 'failure', reason: 'last-factor', userId: user.id, username: user.username, method: 'otp', context });
        throw new ServiceError('last-factor', 'the authenticator app is the only way to sign in; add a passkey first');
      }
    }
    await this.deps.store.totp.delete(user.id);
    await this.deps.audit.record({
      type: 'totp.reset',
      result: 'success',
      userId: user.id,
      username: user.username,
      method: 'otp',
      context,
      ...(opts.actor ? { actor: opts.actor } : {}),
      details: { removed: record ? (record.confirmed ? 'confirmed' : 'pending') : 'none' },
    });
    return record !== undefined;
  }
}

/** Never a real user id (those are random base64url, see store/ids.ts), so the dummy read finds nothing. */
const DUMMY_USER_ID = '~no-such-user~';
const DUMMY_CONTEXT = 'totp-dummy';
