/** Shared set-up for the WebAuthn ceremony tests: a real SQLite store in a temp directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'vitest';

import type { WebAuthnConfig } from '../../../runtime/config/schema.js';
import { randomId } from '../../../runtime/store/ids.js';
import { openSqliteStore } from '../../../runtime/store/sqlite/index.js';
import type { PasskeyCredential, Store, User } from '../../../runtime/store/types.js';
import { CeremonyError, type CeremonyFailureReason } from '../../../runtime/webauthn/errors.js';
import type { CeremonyDeps } from '../../../runtime/webauthn/ceremony.js';
import { startPasskeyRegistration, verifyPasskeyRegistration } from '../../../runtime/webauthn/registration.js';
import { SoftAuthenticator, type RegistrationKnobs } from '../../support/soft-authenticator.js';

export const ORIGIN = 'https://kanmon.example';

export const RP: WebAuthnConfig = {
  rpId: 'kanmon.example',
  rpName: 'Kanmon',
  origins: [ORIGIN],
  userVerification: 'required',
  challengeTtlSeconds: 300,
};

export interface TestStore {
  readonly store: Store;
  close(): Promise<void>;
}

/** One SQLite file per test file, removed afterwards. */
export async function openTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), 'kanmon-webauthn-'));
  const store = await openSqliteStore({ file: join(dir, 'kanmon.db') });
  return {
    store,
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deps with a clock the test can move. */
export function depsWith(store: Store, overrides: { rp?: Partial<WebAuthnConfig>; time?: { now: number } } = {}): CeremonyDeps {
  const time = overrides.time;
  return {
    store,
    rp: { ...RP, ...overrides.rp },
    ...(time ? { now: () => time.now } : {}),
  };
}

export async function createUser(store: Store, overrides: Partial<User> = {}): Promise<User> {
  const id = overrides.id ?? randomId();
  const user: User = {
    id,
    username: `user-${id.toLowerCase()}`,
    displayName: 'Test User',
    groups: [],
    isAdmin: false,
    disabled: false,
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
    ...overrides,
  };
  await store.users.create(user);
  return user;
}

/** Runs a whole registration for `user` and stores the credential, as the services will. */
export async function enroll(
  deps: CeremonyDeps,
  authenticator: SoftAuthenticator,
  user: User,
  knobs: RegistrationKnobs = {},
): Promise<PasskeyCredential> {
  const existing = await deps.store.credentials.listByUser(user.id);
  const options = await startPasskeyRegistration(deps, { user, subject: user.id, existing });
  const response = authenticator.register(options, knobs);
  const { credential } = await verifyPasskeyRegistration(deps, { response, subject: user.id, userId: user.id, name: 'test key' });
  await deps.store.credentials.create(credential);
  return credential;
}

/** Asserts that a promise rejects with a CeremonyError of the given reason, and returns it. */
export async function expectCeremonyError(promise: Promise<unknown>, reason: CeremonyFailureReason): Promise<CeremonyError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a CeremonyError '${reason}', got no error`).toBeDefined();
  if (!(caught instanceof CeremonyError)) {
    throw new Error(`expected a CeremonyError '${reason}', got ${String(caught)}`, { cause: caught });
  }
  expect(caught.reason, caught.message).toBe(reason);
  return caught;
}
