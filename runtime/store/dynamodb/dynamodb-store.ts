import {
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type QueryCommandInput,
} from '@aws-sdk/client-dynamodb';
import {
  CertificateAuthorityExistsError,
  CertificateExistsError,
  CertificateLimitError,
  ConcurrentUpdateError,
  CredentialExistsError,
  DownloadLinkUnusableError,
  KeyExistsError,
  NotFoundError,
  StoreError,
  StoreUnavailableError,
  TokenUnusableError,
  UserExistsError,
  UsernameTakenError,
} from '../errors.js';
import type {
  AuditEvent,
  AuditStore,
  CertificateAuthorityRecord,
  CertificateAuthorityStore,
  CertificateDelivery,
  CertificateDeliveryStore,
  CertificateDownloadLink,
  CertificateOwner,
  Challenge,
  ChallengeStore,
  ClientCertificate,
  ClientCertificateStore,
  CredentialStore,
  EnrollmentPurpose,
  EnrollmentToken,
  EnrollmentTokenStore,
  LoginThrottle,
  LoginThrottleStore,
  PasskeyCredential,
  RecoveryCode,
  RecoveryCodeSet,
  RecoveryCodeStore,
  RevocationReason,
  RevokedCertificateEntry,
  Session,
  SessionPasskey,
  SessionStore,
  SigningKey,
  SigningKeyStore,
  Store,
  TotpSecret,
  TotpStore,
  User,
  UserStore,
  DocumentStore,
  DocumentWrite,
  StoredDocument,
} from '../types.js';
import { certificateOwnerKey, purposeOf, requireStep, requireWindow, revocationReasonOf } from '../records.js';
import { checkDocumentKey, checkDocumentWrite, decodeDocumentCursor, encodeDocumentCursor } from '../documents.js';
import { ITEM_KEYS as K, TABLE_SCHEMA } from './schema.js';

export interface DynamoStoreOptions {
  readonly table: string;
  /** @default the AWS SDK's own region resolution (us-east-1 when `endpoint` is set) */
  readonly region?: string;
  /** DynamoDB Local or another endpoint; static dummy credentials are used with it. */
  readonly endpoint?: string;
}

type Item = Record<string, AttributeValue>;

const PK = TABLE_SCHEMA.partitionKey;
const SK = TABLE_SCHEMA.sortKey;
const TTL = TABLE_SCHEMA.ttlAttribute;
const GSI1 = TABLE_SCHEMA.globalSecondaryIndexes[0];

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
/** How many deletes one deleteByUser / deleteUnused keeps in flight. */
const DELETE_CONCURRENCY = 10;
/** Transactions that collide with another transaction on the same item are retried this often. */
const TRANSACTION_ATTEMPTS = 5;

/** Bounds on one DynamoDB call (see createDynamoDbClient). */
export const STORE_CONNECT_TIMEOUT_MS = 1000;
export const STORE_REQUEST_TIMEOUT_MS = 3000;
export const STORE_MAX_ATTEMPTS = 2;

/**
 * A client for the store and for table creation. With an endpoint (DynamoDB Local) it uses
 * fixed dummy credentials, because Local partitions tables by access key and region and must
 * see the same pair from every client (Local accepts only letters and digits in the key id).
 */
export function createDynamoDbClient(options: Omit<DynamoStoreOptions, 'table'>): DynamoDBClient {
  return new DynamoDBClient({
    ...(options.region ? { region: options.region } : options.endpoint ? { region: 'us-east-1' } : {}),
    ...(options.endpoint
      ? { endpoint: options.endpoint, credentials: { accessKeyId: 'kanmonlocal', secretAccessKey: 'kanmonlocal' } }
      : {}),
    // Bounded waits: a dead or hung store must become StoreUnavailableError within seconds, not
    // a stuck request. DynamoDB answers in milliseconds; without throwOnRequestTimeout the
    // handler's requestTimeout only warns. Worst case per call: 2 attempts × (1 s to connect +
    // 3 s to answer) plus the retry backoff, about 8.5 s (README: Operations, store failure).
    requestHandler: { connectionTimeout: STORE_CONNECT_TIMEOUT_MS, requestTimeout: STORE_REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
    maxAttempts: STORE_MAX_ATTEMPTS,
  });
}

/** Opens the DynamoDB store on an existing table (created by the CDK stack, or createTable locally). */
export async function openDynamoStore(options: DynamoStoreOptions): Promise<Store> {
  const client = createDynamoDbClient(options);
  const store = new DynamoStore(new Table(client, options.table));
  try {
    // Fail at start-up, not at the first login, when the table or the credentials are wrong.
    await store.ping();
  } catch (err) {
    client.destroy();
    throw err;
  }
  return store;
}

// ---------------------------------------------------------------------------------------------
// Table access: every SDK call goes through here, so no raw SDK error can leave the store.

interface ConditionalOptions {
  readonly condition?: string;
  readonly names?: Record<string, string>;
  readonly values?: Item;
}

class Table {
  constructor(
    readonly client: DynamoDBClient,
    readonly name: string,
  ) {}

  async get(pk: string, sk: string): Promise<Item | undefined> {
    const out = await this.send('GetItem', () =>
      this.client.send(new GetItemCommand({ TableName: this.name, Key: key(pk, sk), ConsistentRead: true })),
    );
    return out.Item;
  }

  /** @returns false when the condition failed. */
  async put(item: Item, options: ConditionalOptions = {}): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.name,
          Item: item,
          ...expression(options),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw unavailable('PutItem', err);
    }
  }

  /** @returns the updated item (ALL_NEW), or undefined when the condition failed. */
  async update(pk: string, sk: string, update: string, options: ConditionalOptions): Promise<Item | undefined> {
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.name,
          Key: key(pk, sk),
          UpdateExpression: update,
          ReturnValues: 'ALL_NEW',
          ...expression(options),
        }),
      );
      return out.Attributes ?? {};
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw unavailable('UpdateItem', err);
    }
  }

  /** @returns the deleted item, or undefined when there was none or the condition failed. */
  async delete(pk: string, sk: string, options: ConditionalOptions = {}): Promise<Item | undefined> {
    try {
      const out = await this.client.send(
        new DeleteItemCommand({
          TableName: this.name,
          Key: key(pk, sk),
          ReturnValues: 'ALL_OLD',
          ...expression(options),
        }),
      );
      return out.Attributes;
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw unavailable('DeleteItem', err);
    }
  }

  /**
   * Runs a query page by page until `enough` items passed `accept` or the partition ends.
   * Only ever a Query on one partition (base table or gsi1): no request path scans.
   */
  async query(
    input: Omit<QueryCommandInput, 'TableName' | 'ExclusiveStartKey'>,
    enough = Number.POSITIVE_INFINITY,
    accept: (item: Item) => boolean = () => true,
  ): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const out = await this.send('Query', () =>
        this.client.send(new QueryCommand({ ...input, TableName: this.name, ...(start ? { ExclusiveStartKey: start } : {}) })),
      );
      for (const item of out.Items ?? []) {
        if (!accept(item)) continue;
        items.push(item);
        if (items.length >= enough) return items;
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async send<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw unavailable(operation, err);
    }
  }
}

function key(pk: string, sk: string): Item {
  return { [PK]: { S: pk }, [SK]: { S: sk } };
}

function expression(options: ConditionalOptions): {
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Item;
} {
  return {
    ...(options.condition ? { ConditionExpression: options.condition } : {}),
    ...(options.names && Object.keys(options.names).length > 0 ? { ExpressionAttributeNames: options.names } : {}),
    ...(options.values && Object.keys(options.values).length > 0 ? { ExpressionAttributeValues: options.values } : {}),
  };
}

/** The condition that makes a put a create: no item with this key yet. */
const NOT_EXISTS = { condition: 'attribute_not_exists(#pk)', names: { '#pk': PK } } as const;
/** The condition that makes an update or delete apply only to an item that is there. */
const EXISTS = { condition: 'attribute_exists(#pk)', names: { '#pk': PK } } as const;

function isConditionFailed(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}

function unavailable(operation: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  // DynamoDB refusing a malformed request is a bug in the request, not an outage: it must not
  // count as the store failing, fail readiness or page anyone.
  if (err instanceof Error && err.name === 'ValidationException') return new StoreError(`DynamoDB ${operation} refused the request: ${detail}`, { cause: err });
  return new StoreUnavailableError(`DynamoDB ${operation} failed: ${detail}`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// Attribute marshalling. Written by hand for the few shapes the store uses, so each item's
// layout is visible here and a malformed item fails loudly instead of becoming `undefined`.

const str = (value: string): AttributeValue => ({ S: value });
const num = (value: number): AttributeValue => {
  // String(NaN) would reach DynamoDB as "NaN" and come back as a ValidationException on the whole write.
  if (!Number.isFinite(value)) throw new StoreError(`a number attribute must be finite, got ${String(value)}`);
  return { N: String(value) };
};
const bool = (value: boolean): AttributeValue => ({ BOOL: value });
const strings = (values: readonly string[]): AttributeValue => ({ L: values.map(str) });

/** Epoch seconds for DynamoDB TTL, rounded up so an item is never removed before it expires. */
const ttlOf = (expiresAtMs: number): AttributeValue => num(Math.ceil(expiresAtMs / 1000));

/** Zero-padded so that sort-key text order is numeric order. */
const sortableTime = (ms: number): string => String(Math.max(0, Math.trunc(ms))).padStart(15, '0');

function malformed(item: Item, attribute: string): StoreError {
  const pk = item[PK]?.S ?? '?';
  return new StoreError(`malformed DynamoDB item ${pk}: attribute ${attribute} is missing or of the wrong type`);
}

function readS(item: Item, name: string): string {
  const value = item[name]?.S;
  if (value === undefined) throw malformed(item, name);
  return value;
}

function readOptS(item: Item, name: string): string | undefined {
  const attr = item[name];
  if (attr === undefined || attr.NULL) return undefined;
  if (attr.S === undefined) throw malformed(item, name);
  return attr.S;
}

function readN(item: Item, name: string): number {
  const raw = item[name]?.N;
  const value = raw === undefined ? Number.NaN : Number(raw);
  if (!Number.isFinite(value)) throw malformed(item, name);
  return value;
}

function readOptN(item: Item, name: string): number | undefined {
  return item[name] === undefined ? undefined : readN(item, name);
}

function readBool(item: Item, name: string): boolean {
  const value = item[name]?.BOOL;
  if (value === undefined) throw malformed(item, name);
  return value;
}

function readOptBool(item: Item, name: string): boolean | undefined {
  return item[name] === undefined ? undefined : readBool(item, name);
}

function readB(item: Item, name: string): Uint8Array {
  const value = item[name]?.B;
  if (value === undefined) throw malformed(item, name);
  // A copy, so the caller owns plain bytes and not a view into the response buffer.
  return new Uint8Array(value);
}

function readStrings(item: Item, name: string): string[] {
  const list = item[name]?.L;
  if (list === undefined) throw malformed(item, name);
  return list.map((entry) => {
    if (entry.S === undefined) throw malformed(item, name);
    return entry.S;
  });
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_PAGE;
  return Math.min(MAX_PAGE, Math.max(1, Math.trunc(limit)));
}

/** Runs `work` over `inputs` with at most `width` in flight. */
async function inBatches<T, R>(inputs: readonly T[], width: number, work: (input: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < inputs.length; i += width) {
    results.push(...(await Promise.all(inputs.slice(i, i + width).map(work))));
  }
  return results;
}

// ---------------------------------------------------------------------------------------------

class DynamoStore implements Store {
  readonly kind = 'dynamodb' as const;
  readonly users: UserStore;
  readonly credentials: CredentialStore;
  readonly challenges: ChallengeStore;
  readonly sessions: SessionStore;
  readonly enrollmentTokens: EnrollmentTokenStore;
  readonly signingKeys: SigningKeyStore;
  readonly audit: AuditStore;
  readonly totp: TotpStore;
  readonly recoveryCodes: RecoveryCodeStore;
  readonly loginThrottle: LoginThrottleStore;
  readonly certificateAuthorities: CertificateAuthorityStore;
  readonly clientCertificates: ClientCertificateStore;
  readonly certificateDeliveries: CertificateDeliveryStore;
  readonly documents: DocumentStore;

  constructor(private readonly table: Table) {
    this.users = new DynamoUserStore(table);
    this.credentials = new DynamoCredentialStore(table);
    this.challenges = new DynamoChallengeStore(table);
    this.sessions = new DynamoSessionStore(table);
    this.enrollmentTokens = new DynamoEnrollmentTokenStore(table);
    this.signingKeys = new DynamoSigningKeyStore(table);
    this.audit = new DynamoAuditStore(table);
    this.totp = new DynamoTotpStore(table);
    this.recoveryCodes = new DynamoRecoveryCodeStore(table);
    this.loginThrottle = new DynamoLoginThrottleStore(table);
    this.certificateAuthorities = new DynamoCertificateAuthorityStore(table);
    this.clientCertificates = new DynamoClientCertificateStore(table);
    this.certificateDeliveries = new DynamoCertificateDeliveryStore(table);
    this.documents = new DynamoDocumentStore(table);
  }

  async ping(): Promise<void> {
    // A GetItem of a key that never exists: needs only the permission the store has anyway.
    await this.table.get('PING', 'PING');
  }

  async sweepExpired(): Promise<void> {
    // DynamoDB's TTL removes expired challenges, sessions, tokens, TOTP step marks, throttle
    // records, certificate deliveries and download links; readers check expiry themselves.
  }

  async close(): Promise<void> {
    this.table.client.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Users: the user item, plus a USERNAME#<name> claim written in the same transaction so that a
// username can belong to one user only (DynamoDB has no unique constraints of its own).

function userItem(user: User): Item {
  return {
    ...key(K.userPrefix + user.id, K.userSort),
    [GSI1.partitionKey]: str(K.usersIndexPartition),
    [GSI1.sortKey]: str(user.username),
    itemType: str('user'),
    id: str(user.id),
    username: str(user.username),
    displayName: str(user.displayName),
    groups: strings(user.groups),
    isAdmin: bool(user.isAdmin),
    disabled: bool(user.disabled),
    createdAt: num(user.createdAt),
    updatedAt: num(user.updatedAt),
  };
}

function userFromItem(item: Item): User {
  return {
    id: readS(item, 'id'),
    username: readS(item, 'username'),
    displayName: readS(item, 'displayName'),
    groups: readStrings(item, 'groups'),
    isAdmin: readBool(item, 'isAdmin'),
    disabled: readBool(item, 'disabled'),
    createdAt: readN(item, 'createdAt'),
    updatedAt: readN(item, 'updatedAt'),
  };
}

class DynamoUserStore implements UserStore {
  constructor(private readonly table: Table) {}

  async create(user: User): Promise<void> {
    const command = new TransactWriteItemsCommand({
      TransactItems: [
        {
          Put: {
            TableName: this.table.name,
            Item: userItem(user),
            ConditionExpression: NOT_EXISTS.condition,
            ExpressionAttributeNames: NOT_EXISTS.names,
          },
        },
        {
          Put: {
            TableName: this.table.name,
            Item: { ...key(K.usernamePrefix + user.username, K.usernameSort), itemType: str('username'), userId: str(user.id) },
            ConditionExpression: NOT_EXISTS.condition,
            ExpressionAttributeNames: NOT_EXISTS.names,
          },
        },
      ],
    });
    for (let attempt = 1; ; attempt++) {
      try {
        await this.table.client.send(command);
        return;
      } catch (err) {
        const reasons = cancellationCodes(err);
        if (reasons === undefined) throw unavailable('TransactWriteItems', err);
        // Same order as the SQLite store's checks: the id first, then the username.
        if (reasons[0] === 'ConditionalCheckFailed') throw new UserExistsError(user.id);
        if (reasons[1] === 'ConditionalCheckFailed') throw new UsernameTakenError(user.username);
        if (!reasons.includes('TransactionConflict')) throw unavailable('TransactWriteItems', err);
        // Another transaction held one of the items; after it finishes, a retry sees its outcome.
        if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError('user', user.id);
        await sleep(10 * 2 ** attempt * (0.5 + Math.random()));
      }
    }
  }

  async getById(id: string): Promise<User | undefined> {
    const item = await this.table.get(K.userPrefix + id, K.userSort);
    return item && userFromItem(item);
  }

  async getByUsername(username: string): Promise<User | undefined> {
    // Two consistent reads rather than the (eventually consistent) index, so a user is found
    // the moment create() returns.
    const claim = await this.table.get(K.usernamePrefix + username, K.usernameSort);
    return claim ? this.getById(readS(claim, 'userId')) : undefined;
  }

  async update(user: User): Promise<void> {
    const updated = await this.table.update(
      K.userPrefix + user.id,
      K.userSort,
      'SET #displayName = :displayName, #groups = :groups, #isAdmin = :isAdmin, #disabled = :disabled, #updatedAt = :updatedAt',
      {
        condition: 'attribute_exists(#pk)',
        names: {
          '#pk': PK,
          '#displayName': 'displayName',
          '#groups': 'groups',
          '#isAdmin': 'isAdmin',
          '#disabled': 'disabled',
          '#updatedAt': 'updatedAt',
        },
        values: {
          ':displayName': str(user.displayName),
          ':groups': strings(user.groups),
          ':isAdmin': bool(user.isAdmin),
          ':disabled': bool(user.disabled),
          ':updatedAt': num(user.updatedAt),
        },
      },
    );
    if (!updated) throw new NotFoundError('user', user.id);
  }

  async list(opts: { limit?: number; cursor?: string } = {}): Promise<{ users: User[]; cursor?: string }> {
    const limit = pageSize(opts.limit);
    const after = opts.cursor === undefined ? undefined : decodeUserCursor(opts.cursor);
    // One extra item tells whether another page exists, so the last page carries no cursor.
    const items = await this.table.query(
      {
        IndexName: GSI1.indexName,
        KeyConditionExpression: after === undefined ? '#gpk = :gpk' : '#gpk = :gpk AND #gsk > :after',
        ExpressionAttributeNames: { '#gpk': GSI1.partitionKey, ...(after === undefined ? {} : { '#gsk': GSI1.sortKey }) },
        ExpressionAttributeValues: {
          ':gpk': str(K.usersIndexPartition),
          ...(after === undefined ? {} : { ':after': str(after) }),
        },
        ScanIndexForward: true,
        Limit: limit + 1,
      },
      limit + 1,
    );
    const users = items.slice(0, limit).map(userFromItem);
    const last = users[users.length - 1];
    return items.length > limit && last ? { users, cursor: encodeUserCursor(last.username) } : { users };
  }

  async hasAny(): Promise<boolean> {
    const items = await this.table.query(
      {
        IndexName: GSI1.indexName,
        KeyConditionExpression: '#gpk = :gpk',
        ExpressionAttributeNames: { '#gpk': GSI1.partitionKey },
        ExpressionAttributeValues: { ':gpk': str(K.usersIndexPartition) },
        Limit: 1,
      },
      1,
    );
    return items.length > 0;
  }
}

/** The cursor is the last username of the page (the same format as the SQLite store's). */
function encodeUserCursor(username: string): string {
  return Buffer.from(username, 'utf8').toString('base64url');
}

function decodeUserCursor(cursor: string): string {
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

/** Cancellation reason codes of a cancelled transaction, or undefined for any other error. */
function cancellationCodes(err: unknown): string[] | undefined {
  if (!(err instanceof Error) || err.name !== 'TransactionCanceledException') return undefined;
  const reasons = (err as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.map((reason) => reason.Code ?? 'None');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// Passkey credentials

function credentialFromItem(item: Item): PasskeyCredential {
  const lastUsedAt = readOptN(item, 'lastUsedAt');
  const attestationFormat = readOptS(item, 'attestationFormat');
  const attestationTrusted = readOptBool(item, 'attestationTrusted');
  return {
    id: readS(item, 'id'),
    userId: readS(item, 'userId'),
    publicKey: readB(item, 'publicKey'),
    counter: readN(item, 'counter'),
    transports: readStrings(item, 'transports'),
    deviceType: readS(item, 'deviceType') === 'multiDevice' ? 'multiDevice' : 'singleDevice',
    backedUp: readBool(item, 'backedUp'),
    aaguid: readS(item, 'aaguid'),
    name: readS(item, 'name'),
    createdAt: readN(item, 'createdAt'),
    ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
    ...(attestationFormat === undefined ? {} : { attestationFormat }),
    ...(attestationTrusted === undefined ? {} : { attestationTrusted }),
  };
}

class DynamoCredentialStore implements CredentialStore {
  constructor(private readonly table: Table) {}

  async create(credential: PasskeyCredential): Promise<void> {
    const item: Item = {
      ...key(K.credentialPrefix + credential.id, K.credentialSort),
      [GSI1.partitionKey]: str(K.userPrefix + credential.userId),
      [GSI1.sortKey]: str(`${K.credentialPrefix}${sortableTime(credential.createdAt)}#${credential.id}`),
      itemType: str('credential'),
      id: str(credential.id),
      userId: str(credential.userId),
      publicKey: { B: credential.publicKey },
      counter: num(credential.counter),
      transports: strings(credential.transports),
      deviceType: str(credential.deviceType),
      backedUp: bool(credential.backedUp),
      aaguid: str(credential.aaguid),
      name: str(credential.name),
      createdAt: num(credential.createdAt),
      ...(credential.lastUsedAt === undefined ? {} : { lastUsedAt: num(credential.lastUsedAt) }),
      ...(credential.attestationFormat === undefined ? {} : { attestationFormat: str(credential.attestationFormat) }),
      ...(credential.attestationTrusted === undefined ? {} : { attestationTrusted: bool(credential.attestationTrusted) }),
    };
    // Keyed by the credential id alone, so the condition makes the id unique across all users.
    if (!(await this.table.put(item, NOT_EXISTS))) throw new CredentialExistsError(credential.id);
  }

  async get(id: string): Promise<PasskeyCredential | undefined> {
    const item = await this.table.get(K.credentialPrefix + id, K.credentialSort);
    return item && credentialFromItem(item);
  }

  async listByUser(userId: string): Promise<PasskeyCredential[]> {
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression: '#gpk = :gpk AND begins_with(#gsk, :prefix)',
      ExpressionAttributeNames: { '#gpk': GSI1.partitionKey, '#gsk': GSI1.sortKey },
      ExpressionAttributeValues: { ':gpk': str(K.userPrefix + userId), ':prefix': str(K.credentialPrefix) },
    });
    return items.map(credentialFromItem);
  }

  async recordUse(
    id: string,
    update: { expectedCounter: number; counter: number; lastUsedAt: number; backedUp?: boolean },
  ): Promise<void> {
    const setBackedUp = update.backedUp !== undefined;
    const updated = await this.table.update(
      K.credentialPrefix + id,
      K.credentialSort,
      `SET #counter = :counter, #lastUsedAt = :lastUsedAt${setBackedUp ? ', #backedUp = :backedUp' : ''}`,
      {
        condition: 'attribute_exists(#pk) AND #counter = :expected',
        names: {
          '#pk': PK,
          '#counter': 'counter',
          '#lastUsedAt': 'lastUsedAt',
          ...(setBackedUp ? { '#backedUp': 'backedUp' } : {}),
        },
        values: {
          ':counter': num(update.counter),
          ':lastUsedAt': num(update.lastUsedAt),
          ':expected': num(update.expectedCounter),
          ...(update.backedUp === undefined ? {} : { ':backedUp': bool(update.backedUp) }),
        },
      },
    );
    if (updated) return;
    // The write is already refused; this read only names the reason.
    if (!(await this.table.get(K.credentialPrefix + id, K.credentialSort))) throw new NotFoundError('credential', id);
    throw new ConcurrentUpdateError('credential', id);
  }

  async rename(id: string, name: string): Promise<void> {
    const updated = await this.table.update(K.credentialPrefix + id, K.credentialSort, 'SET #name = :name', {
      condition: 'attribute_exists(#pk)',
      names: { '#pk': PK, '#name': 'name' },
      values: { ':name': str(name) },
    });
    if (!updated) throw new NotFoundError('credential', id);
  }

  async delete(id: string): Promise<void> {
    await this.table.delete(K.credentialPrefix + id, K.credentialSort);
  }
}

// ---------------------------------------------------------------------------------------------
// Challenges

function challengeFromItem(item: Item): Challenge {
  const data = readOptS(item, 'data');
  return {
    challenge: readS(item, 'challenge'),
    ceremony: readS(item, 'ceremony') === 'registration' ? 'registration' : 'authentication',
    subject: readS(item, 'subject'),
    createdAt: readN(item, 'createdAt'),
    expiresAt: readN(item, 'expiresAt'),
    ...(data === undefined ? {} : { data }),
  };
}

class DynamoChallengeStore implements ChallengeStore {
  constructor(private readonly table: Table) {}

  async put(challenge: Challenge): Promise<void> {
    const item: Item = {
      ...key(K.challengePrefix + challenge.challenge, K.challengeSort),
      [TTL]: ttlOf(challenge.expiresAt),
      itemType: str('challenge'),
      challenge: str(challenge.challenge),
      ceremony: str(challenge.ceremony),
      subject: str(challenge.subject),
      createdAt: num(challenge.createdAt),
      expiresAt: num(challenge.expiresAt),
      ...(challenge.data === undefined ? {} : { data: str(challenge.data) }),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new StoreError('challenge already exists');
  }

  async consume(challenge: string): Promise<Challenge | undefined> {
    // A conditional DeleteItem returning the old item: the condition makes concurrent deletes of
    // the same key serialise, so exactly one consumer gets the item and the others fail the check
    // (an unconditional delete may hand the old item to more than one of them).
    const item = await this.table.delete(K.challengePrefix + challenge, K.challengeSort, EXISTS);
    return item && challengeFromItem(item);
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

function sessionFromItem(item: Item): Session {
  return {
    id: readS(item, 'id'),
    userId: readS(item, 'userId'),
    authMethods: readStrings(item, 'authMethods'),
    createdAt: readN(item, 'createdAt'),
    lastSeenAt: readN(item, 'lastSeenAt'),
    absoluteExpiresAt: readN(item, 'absoluteExpiresAt'),
    ip: readS(item, 'ip'),
    userAgent: readS(item, 'userAgent'),
    ...(item.passkey === undefined ? {} : { passkey: sessionPasskeyFromItem(item) }),
  };
}

/** The session's passkey evidence is one map attribute, written and read whole. */
function sessionPasskeyItem(passkey: SessionPasskey): AttributeValue {
  return {
    M: {
      credentialId: str(passkey.credentialId),
      deviceBound: bool(passkey.deviceBound),
      aaguid: str(passkey.aaguid),
      attested: bool(passkey.attested),
    },
  };
}

function sessionPasskeyFromItem(item: Item): SessionPasskey {
  const map = item.passkey?.M;
  if (map === undefined) throw malformed(item, 'passkey');
  const inner = map as Item;
  try {
    return {
      credentialId: readS(inner, 'credentialId'),
      deviceBound: readBool(inner, 'deviceBound'),
      aaguid: readS(inner, 'aaguid'),
      attested: readBool(inner, 'attested'),
    };
  } catch {
    throw malformed(item, 'passkey');
  }
}

class DynamoSessionStore implements SessionStore {
  constructor(private readonly table: Table) {}

  async create(session: Session): Promise<void> {
    const item: Item = {
      ...key(K.sessionPrefix + session.id, K.sessionSort),
      [GSI1.partitionKey]: str(K.userPrefix + session.userId),
      [GSI1.sortKey]: str(`${K.sessionPrefix}${sortableTime(session.createdAt)}#${session.id}`),
      [TTL]: ttlOf(session.absoluteExpiresAt),
      itemType: str('session'),
      id: str(session.id),
      userId: str(session.userId),
      authMethods: strings(session.authMethods),
      createdAt: num(session.createdAt),
      lastSeenAt: num(session.lastSeenAt),
      absoluteExpiresAt: num(session.absoluteExpiresAt),
      ip: str(session.ip),
      userAgent: str(session.userAgent),
      ...(session.passkey ? { passkey: sessionPasskeyItem(session.passkey) } : {}),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new StoreError('session already exists');
  }

  async get(id: string): Promise<Session | undefined> {
    const item = await this.table.get(K.sessionPrefix + id, K.sessionSort);
    return item && sessionFromItem(item);
  }

  async touch(id: string, lastSeenAt: number): Promise<void> {
    // The condition both ignores missing sessions (no upsert) and keeps lastSeenAt from moving back.
    await this.table.update(K.sessionPrefix + id, K.sessionSort, 'SET #lastSeenAt = :t', {
      condition: 'attribute_exists(#pk) AND #lastSeenAt < :t',
      names: { '#pk': PK, '#lastSeenAt': 'lastSeenAt' },
      values: { ':t': num(lastSeenAt) },
    });
  }

  async delete(id: string): Promise<void> {
    await this.table.delete(K.sessionPrefix + id, K.sessionSort);
  }

  async listByUser(userId: string): Promise<Session[]> {
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression: '#gpk = :gpk AND begins_with(#gsk, :prefix)',
      ExpressionAttributeNames: { '#gpk': GSI1.partitionKey, '#gsk': GSI1.sortKey },
      ExpressionAttributeValues: { ':gpk': str(K.userPrefix + userId), ':prefix': str(K.sessionPrefix) },
    });
    return items.map(sessionFromItem);
  }

  async deleteByUser(userId: string, exceptId?: string): Promise<number> {
    // The index is eventually consistent: a session created in the last moment may be missed.
    // Services re-check sessions against the user's state on every request, so that window is
    // bounded by the index lag (typically well under a second).
    const victims = (await this.listByUser(userId)).filter((session) => session.id !== exceptId);
    const deleted = await inBatches(victims, DELETE_CONCURRENCY, (session) =>
      this.table.delete(K.sessionPrefix + session.id, K.sessionSort, EXISTS),
    );
    // Conditional deletes: count only what this call removed, not what a concurrent one got to first.
    return deleted.filter((item) => item !== undefined).length;
  }
}

// ---------------------------------------------------------------------------------------------
// Enrollment tokens

function tokenFromItem(item: Item): EnrollmentToken {
  const usedAt = readOptN(item, 'usedAt');
  const codeHash = readOptS(item, 'codeHash');
  return {
    id: readS(item, 'id'),
    purpose: purposeOf(readS(item, 'purpose')),
    userId: readS(item, 'userId'),
    createdAt: readN(item, 'createdAt'),
    expiresAt: readN(item, 'expiresAt'),
    createdBy: readS(item, 'createdBy'),
    ...(usedAt === undefined ? {} : { usedAt }),
    ...(codeHash === undefined ? {} : { codeHash }),
  };
}

class DynamoEnrollmentTokenStore implements EnrollmentTokenStore {
  constructor(private readonly table: Table) {}

  async create(token: EnrollmentToken): Promise<void> {
    const item: Item = {
      ...key(K.tokenPrefix + token.id, K.tokenSort),
      [GSI1.partitionKey]: str(K.tokensIndexPrefix + token.purpose),
      // userId first so deleteUnused(purpose, userId) is a begins_with on the index.
      [GSI1.sortKey]: str(`${token.userId}#${token.id}`),
      [TTL]: ttlOf(token.expiresAt),
      itemType: str('enrollmentToken'),
      id: str(token.id),
      purpose: str(token.purpose),
      userId: str(token.userId),
      createdAt: num(token.createdAt),
      expiresAt: num(token.expiresAt),
      createdBy: str(token.createdBy),
      ...(token.usedAt === undefined ? {} : { usedAt: num(token.usedAt) }),
      ...(token.codeHash === undefined ? {} : { codeHash: str(token.codeHash) }),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new StoreError('enrollment token already exists');
  }

  async get(id: string): Promise<EnrollmentToken | undefined> {
    const item = await this.table.get(K.tokenPrefix + id, K.tokenSort);
    return item && tokenFromItem(item);
  }

  async consume(id: string, now: number): Promise<EnrollmentToken> {
    // Condition and write are one request, so of concurrent consumers exactly one succeeds.
    const updated = await this.table.update(K.tokenPrefix + id, K.tokenSort, 'SET #usedAt = :now', {
      condition: 'attribute_exists(#pk) AND attribute_not_exists(#usedAt) AND #expiresAt > :now',
      names: { '#pk': PK, '#usedAt': 'usedAt', '#expiresAt': 'expiresAt' },
      values: { ':now': num(now) },
    });
    if (updated) return tokenFromItem(updated);
    // Refused; a read names the reason (a token never becomes usable again, so it cannot mislead).
    const existing = await this.get(id);
    if (!existing) throw new TokenUnusableError('unknown');
    if (existing.usedAt !== undefined) throw new TokenUnusableError('used');
    throw new TokenUnusableError('expired');
  }

  async deleteUnused(purpose: EnrollmentPurpose, userId?: string): Promise<number> {
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression:
        userId === undefined ? '#gpk = :gpk' : '#gpk = :gpk AND begins_with(#gsk, :prefix)',
      FilterExpression: 'attribute_not_exists(#usedAt)',
      ExpressionAttributeNames: {
        '#gpk': GSI1.partitionKey,
        '#usedAt': 'usedAt',
        ...(userId === undefined ? {} : { '#gsk': GSI1.sortKey }),
      },
      ExpressionAttributeValues: {
        ':gpk': str(K.tokensIndexPrefix + purpose),
        ...(userId === undefined ? {} : { ':prefix': str(`${userId}#`) }),
      },
    });
    const deleted = await inBatches(items, DELETE_CONCURRENCY, (item) =>
      // Conditional, so a token consumed since the query ran is kept.
      this.table.delete(K.tokenPrefix + readS(item, 'id'), K.tokenSort, {
        condition: 'attribute_exists(#pk) AND attribute_not_exists(#usedAt)',
        names: { '#pk': PK, '#usedAt': 'usedAt' },
      }),
    );
    return deleted.filter((item) => item !== undefined).length;
  }
}

// ---------------------------------------------------------------------------------------------
// Signing keys: one small partition, read whole with a consistent query.

class DynamoSigningKeyStore implements SigningKeyStore {
  constructor(private readonly table: Table) {}

  async create(signingKey: SigningKey): Promise<void> {
    const item: Item = {
      ...key(K.signingKeysPartition, signingKey.kid),
      itemType: str('signingKey'),
      kid: str(signingKey.kid),
      alg: str(signingKey.alg),
      publicJwk: str(signingKey.publicJwk),
      sealedPrivateKey: str(signingKey.sealedPrivateKey),
      createdAt: num(signingKey.createdAt),
      retiresAt: num(signingKey.retiresAt),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new KeyExistsError(signingKey.kid);
  }

  async list(): Promise<SigningKey[]> {
    const items = await this.table.query({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PK },
      ExpressionAttributeValues: { ':pk': str(K.signingKeysPartition) },
      ConsistentRead: true,
    });
    return items
      .map((item) => ({
        kid: readS(item, 'kid'),
        alg: 'ES256' as const,
        publicJwk: readS(item, 'publicJwk'),
        sealedPrivateKey: readS(item, 'sealedPrivateKey'),
        createdAt: readN(item, 'createdAt'),
        retiresAt: readN(item, 'retiresAt'),
      }))
      .sort((a, b) => b.createdAt - a.createdAt || (a.kid < b.kid ? 1 : a.kid > b.kid ? -1 : 0));
  }
}

// ---------------------------------------------------------------------------------------------
// Audit log. Events live in one partition per UTC day (AUDIT#<yyyy-mm-dd>, sorted by the
// time-sortable event id), which spreads writes over time instead of one ever-hot partition.
// An AUDITDAYS partition lists the days that have events, so reading newest-first walks only
// days that exist, however sparse the log. Per-user listing uses gsi1 (USER#<userId>, AUDIT#<id>).

function auditItem(event: AuditEvent, day: string): Item {
  const optional = (name: string, value: string | undefined): Item => (value === undefined ? {} : { [name]: str(value) });
  return {
    ...key(K.auditDayPrefix + day, event.id),
    ...(event.userId === undefined
      ? {}
      : {
          [GSI1.partitionKey]: str(K.userPrefix + event.userId),
          [GSI1.sortKey]: str(K.auditIndexPrefix + event.id),
        }),
    itemType: str('auditEvent'),
    id: str(event.id),
    time: num(event.time),
    eventType: str(event.type),
    result: str(event.result),
    ...optional('userId', event.userId),
    ...optional('username', event.username),
    ...optional('actor', event.actor),
    ...optional('ip', event.ip),
    ...optional('userAgent', event.userAgent),
    ...optional('method', event.method),
    ...optional('reason', event.reason),
    // Details are free-form JSON; stored as text so any JSON value survives unchanged.
    ...optional('details', event.details === undefined ? undefined : JSON.stringify(event.details)),
  };
}

function auditFromItem(item: Item): AuditEvent {
  const pick = (name: string): Record<string, string> => {
    const value = readOptS(item, name);
    return value === undefined ? {} : { [name]: value };
  };
  const details = readOptS(item, 'details');
  return {
    id: readS(item, 'id'),
    time: readN(item, 'time'),
    type: readS(item, 'eventType'),
    result: readS(item, 'result') === 'success' ? 'success' : 'failure',
    ...pick('userId'),
    ...pick('username'),
    ...pick('actor'),
    ...pick('ip'),
    ...pick('userAgent'),
    ...pick('method'),
    ...pick('reason'),
    ...(details === undefined ? {} : { details: JSON.parse(details) as Record<string, unknown> }),
  };
}

/** The UTC day of an event id's embedded time (see ids.ts), falling back to `fallbackTime`. */
function auditDay(id: string, fallbackTime?: number): string | undefined {
  const fromId = /^[0-9a-f]{12}/.test(id) ? parseInt(id.slice(0, 12), 16) : Number.NaN;
  const ms = Number.isFinite(fromId) ? fromId : fallbackTime;
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString().slice(0, 10);
}

class DynamoAuditStore implements AuditStore {
  /** Days this process already recorded in AUDITDAYS, so each node writes a day marker once. */
  private readonly knownDays = new Set<string>();

  constructor(private readonly table: Table) {}

  async append(event: AuditEvent): Promise<void> {
    const day = auditDay(event.id, event.time) ?? '0000-00-00';
    if (!this.knownDays.has(day)) {
      // Written before the event, so a reader never finds an event on a day it cannot see.
      await this.table.put({ ...key(K.auditDaysPartition, day), itemType: str('auditDay'), day: str(day) });
      if (this.knownDays.size > 1000) this.knownDays.clear();
      this.knownDays.add(day);
    }
    if (!(await this.table.put(auditItem(event, day), NOT_EXISTS))) {
      throw new StoreError(`audit event ${event.id} already exists`);
    }
  }

  async list(opts: { limit?: number; before?: string; userId?: string } = {}): Promise<AuditEvent[]> {
    const limit = pageSize(opts.limit);
    return opts.userId === undefined ? this.listAll(limit, opts.before) : this.listUser(opts.userId, limit, opts.before);
  }

  private async listAll(limit: number, before: string | undefined): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    const lastDay = before === undefined ? undefined : auditDay(before);
    let dayStart: Item | undefined;
    do {
      const page = await this.table.send('Query', () =>
        this.table.client.send(
          new QueryCommand({
            TableName: this.table.name,
            KeyConditionExpression: lastDay === undefined ? '#pk = :pk' : '#pk = :pk AND #sk <= :day',
            ExpressionAttributeNames: { '#pk': PK, ...(lastDay === undefined ? {} : { '#sk': SK }) },
            ExpressionAttributeValues: {
              ':pk': str(K.auditDaysPartition),
              ...(lastDay === undefined ? {} : { ':day': str(lastDay) }),
            },
            ScanIndexForward: false,
            ConsistentRead: true,
            Limit: 16,
            ...(dayStart ? { ExclusiveStartKey: dayStart } : {}),
          }),
        ),
      );
      for (const dayItem of page.Items ?? []) {
        const items = await this.table.query(
          {
            KeyConditionExpression: before === undefined ? '#pk = :pk' : '#pk = :pk AND #sk < :before',
            ExpressionAttributeNames: { '#pk': PK, ...(before === undefined ? {} : { '#sk': SK }) },
            ExpressionAttributeValues: {
              ':pk': str(K.auditDayPrefix + readS(dayItem, 'day')),
              ...(before === undefined ? {} : { ':before': str(before) }),
            },
            ScanIndexForward: false,
            ConsistentRead: true,
            Limit: limit - events.length,
          },
          limit - events.length,
        );
        events.push(...items.map(auditFromItem));
        if (events.length >= limit) return events;
      }
      dayStart = page.LastEvaluatedKey;
    } while (dayStart);
    return events;
  }

  private async listUser(userId: string, limit: number, before: string | undefined): Promise<AuditEvent[]> {
    // BETWEEN is inclusive, so the `before` event itself is skipped by the accept filter.
    const items = await this.table.query(
      {
        IndexName: GSI1.indexName,
        KeyConditionExpression:
          before === undefined
            ? '#gpk = :gpk AND begins_with(#gsk, :prefix)'
            : '#gpk = :gpk AND #gsk BETWEEN :prefix AND :before',
        ExpressionAttributeNames: { '#gpk': GSI1.partitionKey, '#gsk': GSI1.sortKey },
        ExpressionAttributeValues: {
          ':gpk': str(K.userPrefix + userId),
          ':prefix': str(K.auditIndexPrefix),
          ...(before === undefined ? {} : { ':before': str(K.auditIndexPrefix + before) }),
        },
        ScanIndexForward: false,
        Limit: limit + 1,
      },
      limit,
      (item) => before === undefined || readS(item, 'id') !== before,
    );
    return items.map(auditFromItem);
  }
}

// ---------------------------------------------------------------------------------------------
// TOTP: the secret is one item per user; each accepted time step is a small item of its own,
// created with attribute_not_exists so that exactly one claim of a (user, step) succeeds on any
// node (RFC 6238 §5.2), and forgotten by TTL once the step can no longer be presented.

function totpFromItem(item: Item): TotpSecret {
  const confirmedAt = readOptN(item, 'confirmedAt');
  return {
    userId: readS(item, 'userId'),
    sealedSecret: readS(item, 'sealedSecret'),
    confirmed: readBool(item, 'confirmed'),
    createdAt: readN(item, 'createdAt'),
    ...(confirmedAt === undefined ? {} : { confirmedAt }),
  };
}

class DynamoTotpStore implements TotpStore {
  constructor(private readonly table: Table) {}

  async put(secret: TotpSecret): Promise<void> {
    // Unconditional: a re-enrollment replaces the whole item, confirmation included.
    await this.table.put({
      ...key(K.totpPrefix + secret.userId, K.totpSort),
      itemType: str('totpSecret'),
      userId: str(secret.userId),
      sealedSecret: str(secret.sealedSecret),
      confirmed: bool(secret.confirmed),
      createdAt: num(secret.createdAt),
      ...(secret.confirmedAt === undefined ? {} : { confirmedAt: num(secret.confirmedAt) }),
    });
  }

  async get(userId: string): Promise<TotpSecret | undefined> {
    const item = await this.table.get(K.totpPrefix + userId, K.totpSort);
    return item && totpFromItem(item);
  }

  async confirm(userId: string, at: number): Promise<void> {
    const updated = await this.table.update(
      K.totpPrefix + userId,
      K.totpSort,
      // if_not_exists keeps the first confirmation time when confirm runs twice.
      'SET #confirmed = :true, #confirmedAt = if_not_exists(#confirmedAt, :at)',
      {
        condition: 'attribute_exists(#pk)',
        names: { '#pk': PK, '#confirmed': 'confirmed', '#confirmedAt': 'confirmedAt' },
        values: { ':true': bool(true), ':at': num(at) },
      },
    );
    if (!updated) throw new NotFoundError('totp secret', userId);
  }

  async delete(userId: string): Promise<void> {
    await this.table.delete(K.totpPrefix + userId, K.totpSort);
  }

  async claimStep(userId: string, step: number, expiresAt: number): Promise<boolean> {
    requireStep(step);
    return this.table.put(
      {
        ...key(`${K.totpStepPrefix}${userId}#${step}`, K.totpStepSort),
        [TTL]: ttlOf(expiresAt),
        itemType: str('totpStep'),
        userId: str(userId),
        step: num(step),
        expiresAt: num(expiresAt),
      },
      NOT_EXISTS,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery codes: the whole set is one item (ten short hashes fit easily), so replacing it is a
// single PutItem and a reader never sees two sets mixed. Marking a code used is an UpdateItem on
// one list element, conditioned on the set id and on that element having no usedAt yet.

function recoverySetFromItem(item: Item): RecoveryCodeSet {
  const list = item['codes']?.L;
  if (list === undefined) throw malformed(item, 'codes');
  const codes = list.map((entry): RecoveryCode => {
    const code = entry.M;
    if (code === undefined) throw malformed(item, 'codes');
    const hash = code['hash']?.S;
    if (hash === undefined) throw malformed(item, 'codes');
    const usedAt = readOptN(code, 'usedAt');
    return usedAt === undefined ? { hash } : { hash, usedAt };
  });
  return {
    userId: readS(item, 'userId'),
    setId: readS(item, 'setId'),
    codes,
    createdAt: readN(item, 'createdAt'),
  };
}

class DynamoRecoveryCodeStore implements RecoveryCodeStore {
  constructor(private readonly table: Table) {}

  async replace(set: RecoveryCodeSet): Promise<void> {
    await this.table.put({
      ...key(K.recoveryPrefix + set.userId, K.recoverySort),
      itemType: str('recoveryCodes'),
      userId: str(set.userId),
      setId: str(set.setId),
      createdAt: num(set.createdAt),
      codes: {
        L: set.codes.map((code) => ({
          M: { hash: str(code.hash), ...(code.usedAt === undefined ? {} : { usedAt: num(code.usedAt) }) },
        })),
      },
    });
  }

  async get(userId: string): Promise<RecoveryCodeSet | undefined> {
    const item = await this.table.get(K.recoveryPrefix + userId, K.recoverySort);
    return item && recoverySetFromItem(item);
  }

  async markUsed(userId: string, setId: string, index: number, at: number): Promise<boolean> {
    // The index becomes part of the expression text, so only a plain non-negative integer may get there.
    if (!Number.isSafeInteger(index) || index < 0) return false;
    const code = `#codes[${index}]`;
    const updated = await this.table.update(K.recoveryPrefix + userId, K.recoverySort, `SET ${code}.#usedAt = :at`, {
      // A missing item, another set, an index past the end or an earlier use all fail here.
      condition: `#setId = :setId AND attribute_exists(${code}.#hash) AND attribute_not_exists(${code}.#usedAt)`,
      names: { '#codes': 'codes', '#usedAt': 'usedAt', '#hash': 'hash', '#setId': 'setId' },
      values: { ':at': num(at), ':setId': str(setId) },
    });
    return updated !== undefined;
  }

  async delete(userId: string): Promise<void> {
    await this.table.delete(K.recoveryPrefix + userId, K.recoverySort);
  }
}

// ---------------------------------------------------------------------------------------------
// Login throttles. One item per key. A failure inside the current window is a single atomic
// ADD; starting a new window is a put conditioned on the stale window (and lock) that was read,
// so two nodes racing to restart it cannot both win and no count is lost. Once locked, a record
// carries gsi1 keys in the fixed LOCKED partition, which is what the console lists; TTL removes
// the record (and so its index entry) after both its window and its lock have ended.

/** How often recordFailure and lock retry after losing a race to another writer of the same key. */
const THROTTLE_ATTEMPTS = 6;

interface StoredThrottle extends LoginThrottle {
  /** End of the current window; kept so that expiresAt can be recomputed by lock(). */
  readonly windowEndsAt: number;
}

function throttleItem(record: StoredThrottle): Item {
  return {
    ...key(K.throttlePrefix + record.key, K.throttleSort),
    ...(record.lockedUntil === undefined
      ? {}
      : { [GSI1.partitionKey]: str(K.lockedIndexPartition), [GSI1.sortKey]: str(record.key) }),
    [TTL]: ttlOf(record.expiresAt),
    itemType: str('loginThrottle'),
    key: str(record.key),
    failures: num(record.failures),
    windowStartedAt: num(record.windowStartedAt),
    windowEndsAt: num(record.windowEndsAt),
    ...(record.lockedUntil === undefined ? {} : { lockedUntil: num(record.lockedUntil) }),
    expiresAt: num(record.expiresAt),
  };
}

function throttleFromItem(item: Item): LoginThrottle {
  const lockedUntil = readOptN(item, 'lockedUntil');
  return {
    key: readS(item, 'key'),
    failures: readN(item, 'failures'),
    windowStartedAt: readN(item, 'windowStartedAt'),
    ...(lockedUntil === undefined ? {} : { lockedUntil }),
    expiresAt: readN(item, 'expiresAt'),
  };
}

/** The condition that the stored record still has the window and lock of `read`. */
function unchangedWindowAndLock(read: Item): ConditionalOptions {
  const lockedUntil = readOptN(read, 'lockedUntil');
  return {
    condition:
      '#windowStartedAt = :readStart AND ' +
      (lockedUntil === undefined ? 'attribute_not_exists(#lockedUntil)' : '#lockedUntil = :readLock'),
    names: { '#windowStartedAt': 'windowStartedAt', '#lockedUntil': 'lockedUntil' },
    values: {
      ':readStart': num(readN(read, 'windowStartedAt')),
      ...(lockedUntil === undefined ? {} : { ':readLock': num(lockedUntil) }),
    },
  };
}

class DynamoLoginThrottleStore implements LoginThrottleStore {
  constructor(private readonly table: Table) {}

  async recordFailure(key: string, now: number, windowMs: number): Promise<LoginThrottle> {
    const window = requireWindow(windowMs);
    const cutoff = now - window;
    const pk = K.throttlePrefix + key;
    for (let attempt = 1; ; attempt++) {
      // The common case, one request: ADD is applied atomically by DynamoDB, so concurrent
      // failures in the same window on any number of nodes all count.
      const counted = await this.table.update(pk, K.throttleSort, 'ADD #failures :one', {
        condition: 'attribute_exists(#pk) AND #windowStartedAt >= :cutoff',
        names: { '#pk': PK, '#failures': 'failures', '#windowStartedAt': 'windowStartedAt' },
        values: { ':one': num(1), ':cutoff': num(cutoff) },
      });
      if (counted) return throttleFromItem(counted);

      // No record, or its window is over: start a new one, but only over the record just read.
      const read = await this.table.get(pk, K.throttleSort);
      // When the window read is current, another node started it in between: count into it.
      if (read === undefined || readN(read, 'windowStartedAt') < cutoff) {
        const lockedUntil = read === undefined ? undefined : readOptN(read, 'lockedUntil');
        const record: StoredThrottle = {
          key,
          failures: 1,
          windowStartedAt: now,
          windowEndsAt: now + window,
          // A new window does not end a lock: only its time or clear() does.
          ...(lockedUntil === undefined ? {} : { lockedUntil }),
          expiresAt: Math.max(now + window, lockedUntil ?? 0),
        };
        const restarted = await this.table.put(
          throttleItem(record),
          read === undefined ? NOT_EXISTS : unchangedWindowAndLock(read),
        );
        // Read back through the item mapping, which leaves out the internal windowEndsAt.
        if (restarted) return throttleFromItem(throttleItem(record));
        // Lost the race to another restart or a lock: back off, and the next round sees its result.
        await sleep(5 * 2 ** attempt * (0.5 + Math.random()));
      }
      if (attempt >= THROTTLE_ATTEMPTS) throw new ConcurrentUpdateError('login throttle', key);
    }
  }

  async get(key: string): Promise<LoginThrottle | undefined> {
    const item = await this.table.get(K.throttlePrefix + key, K.throttleSort);
    return item && throttleFromItem(item);
  }

  async lock(key: string, until: number): Promise<void> {
    const pk = K.throttlePrefix + key;
    for (let attempt = 1; ; attempt++) {
      const read = await this.table.get(pk, K.throttleSort);
      if (read === undefined) {
        const record: StoredThrottle = { key, failures: 0, windowStartedAt: 0, windowEndsAt: 0, lockedUntil: until, expiresAt: until };
        if (await this.table.put(throttleItem(record), NOT_EXISTS)) return;
      } else {
        // expiresAt depends on the window end that was read; the condition pins it. The failure
        // count is not written, so concurrent ADDs neither conflict with this nor get lost.
        const windowEndsAt = readN(read, 'windowEndsAt');
        const expiresAt = Math.max(windowEndsAt, until);
        const updated = await this.table.update(
          pk,
          K.throttleSort,
          'SET #lockedUntil = :until, #expiresAt = :expiresAt, #ttl = :ttl, #gpk = :gpk, #gsk = :gsk',
          {
            condition: 'attribute_exists(#pk) AND #windowEndsAt = :windowEndsAt',
            names: {
              '#pk': PK,
              '#lockedUntil': 'lockedUntil',
              '#expiresAt': 'expiresAt',
              '#ttl': TTL,
              '#gpk': GSI1.partitionKey,
              '#gsk': GSI1.sortKey,
              '#windowEndsAt': 'windowEndsAt',
            },
            values: {
              ':until': num(until),
              ':expiresAt': num(expiresAt),
              ':ttl': ttlOf(expiresAt),
              ':gpk': str(K.lockedIndexPartition),
              ':gsk': str(key),
              ':windowEndsAt': num(windowEndsAt),
            },
          },
        );
        if (updated) return;
      }
      if (attempt >= THROTTLE_ATTEMPTS) throw new ConcurrentUpdateError('login throttle', key);
      await sleep(5 * 2 ** attempt * (0.5 + Math.random()));
    }
  }

  async clear(key: string): Promise<void> {
    await this.table.delete(K.throttlePrefix + key, K.throttleSort);
  }

  async listLocked(prefix: string, now: number): Promise<LoginThrottle[]> {
    // One query on the fixed LOCKED partition; records whose lock has ended stay there until TTL
    // removes them, so the filter keeps only locks still running at `now`.
    const byPrefix = prefix !== '';
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression: byPrefix ? '#gpk = :gpk AND begins_with(#gsk, :prefix)' : '#gpk = :gpk',
      FilterExpression: '#lockedUntil > :now',
      ExpressionAttributeNames: {
        '#gpk': GSI1.partitionKey,
        '#lockedUntil': 'lockedUntil',
        ...(byPrefix ? { '#gsk': GSI1.sortKey } : {}),
      },
      ExpressionAttributeValues: {
        ':gpk': str(K.lockedIndexPartition),
        ':now': num(now),
        ...(byPrefix ? { ':prefix': str(prefix) } : {}),
      },
      ScanIndexForward: true,
    });
    return items.map(throttleFromItem);
  }
}

// ---------------------------------------------------------------------------------------------
// Client certificates. The certificate item is keyed by serial (the condition on create makes
// serials unique). Revocations are also written as items of one CERTREVOKED partition, read whole
// for the CRL, and active certificates as items of one CERTEXPIRY partition sorted by expiry, for
// expiry warnings; both are kept in step with the certificate by transactions. The per-user limit
// lives in a CERTOWNER item holding the owner's active serials and a version: a new certificate
// is written together with that item, conditioned on the version that was read, so two nodes
// issuing for one user at once cannot both pass the limit.

class DynamoCertificateAuthorityStore implements CertificateAuthorityStore {
  constructor(private readonly table: Table) {}

  async create(ca: CertificateAuthorityRecord): Promise<void> {
    const item: Item = {
      ...key(K.caPrefix + ca.id, K.caSort),
      itemType: str('certificateAuthority'),
      id: str(ca.id),
      certificateDer: { B: ca.certificateDer },
      sealedPrivateKey: str(ca.sealedPrivateKey),
      createdAt: num(ca.createdAt),
    };
    // Of two nodes creating the CA at the same moment, the condition lets exactly one write.
    if (!(await this.table.put(item, NOT_EXISTS))) throw new CertificateAuthorityExistsError(ca.id);
  }

  async get(id: string): Promise<CertificateAuthorityRecord | undefined> {
    const item = await this.table.get(K.caPrefix + id, K.caSort);
    return (
      item && {
        id: readS(item, 'id'),
        certificateDer: readB(item, 'certificateDer'),
        sealedPrivateKey: readS(item, 'sealedPrivateKey'),
        createdAt: readN(item, 'createdAt'),
      }
    );
  }
}

function clientCertificateItem(certificate: ClientCertificate): Item {
  const owner = certificate.owner;
  return {
    ...key(K.clientCertPrefix + certificate.serial, K.clientCertSort),
    ...(owner.kind === 'user'
      ? {
          [GSI1.partitionKey]: str(K.userPrefix + owner.userId),
          [GSI1.sortKey]: str(`${K.clientCertIndexPrefix}${sortableTime(certificate.issuedAt)}#${certificate.serial}`),
        }
      : {
          [GSI1.partitionKey]: str(K.sharedCertsIndexPartition),
          [GSI1.sortKey]: str(`${owner.label}#${sortableTime(certificate.issuedAt)}#${certificate.serial}`),
        }),
    itemType: str('clientCertificate'),
    serial: str(certificate.serial),
    fingerprint: str(certificate.fingerprint),
    ownerKind: str(owner.kind),
    ownerId: str(owner.kind === 'user' ? owner.userId : owner.label),
    deviceLabel: str(certificate.deviceLabel),
    keyType: str(certificate.keyType),
    certificateDer: { B: certificate.certificateDer },
    issuedAt: num(certificate.issuedAt),
    expiresAt: num(certificate.expiresAt),
    issuedBy: str(certificate.issuedBy),
    status: str('active'),
    ...(certificate.renewalOf === undefined ? {} : { renewalOf: str(certificate.renewalOf) }),
  };
}

function clientCertificateFromItem(item: Item): ClientCertificate {
  const ownerKind = readS(item, 'ownerKind');
  const ownerId = readS(item, 'ownerId');
  const rawStatus = readS(item, 'status');
  const revokedAt = readOptN(item, 'revokedAt');
  const reason = readOptS(item, 'revocationReason');
  const deletedAt = readOptN(item, 'deletedAt');
  const renewalOf = readOptS(item, 'renewalOf');
  return {
    serial: readS(item, 'serial'),
    fingerprint: readS(item, 'fingerprint'),
    owner: ownerKind === 'user' ? { kind: 'user', userId: ownerId } : { kind: 'shared', label: ownerId },
    deviceLabel: readS(item, 'deviceLabel'),
    keyType: readS(item, 'keyType') === 'rsa-2048' ? 'rsa-2048' : 'ec-p256',
    certificateDer: readB(item, 'certificateDer'),
    issuedAt: readN(item, 'issuedAt'),
    expiresAt: readN(item, 'expiresAt'),
    issuedBy: readS(item, 'issuedBy'),
    // Unknown states read as 'revoked', never as 'active': a damaged item must not admit anyone.
    status: rawStatus === 'active' || rawStatus === 'deleted' ? rawStatus : 'revoked',
    ...(revokedAt === undefined ? {} : { revokedAt }),
    ...(reason === undefined ? {} : { revocationReason: revocationReasonOf(reason) }),
    ...(deletedAt === undefined ? {} : { deletedAt }),
    ...(renewalOf === undefined ? {} : { renewalOf }),
  };
}

function expiryEntryKey(certificate: Pick<ClientCertificate, 'serial' | 'expiresAt'>): Item {
  return key(K.certExpiryPartition, `${sortableTime(certificate.expiresAt)}#${certificate.serial}`);
}

function revocationItem(certificate: ClientCertificate, at: number, reason: RevocationReason): Item {
  return {
    ...key(K.revokedCertsPartition, certificate.serial),
    itemType: str('certificateRevocation'),
    serial: str(certificate.serial),
    revokedAt: num(at),
    reason: str(reason),
    expiresAt: num(certificate.expiresAt),
  };
}

type TransactItem = NonNullable<ConstructorParameters<typeof TransactWriteItemsCommand>[0]['TransactItems']>[number];

/**
 * Runs one transaction. Returns undefined when it committed, or the cancellation reason codes
 * when a condition failed; retries a conflict with another transaction a few times.
 */
async function transact(table: Table, items: TransactItem[], entity: string, id: string): Promise<string[] | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      await table.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
      return undefined;
    } catch (err) {
      const reasons = cancellationCodes(err);
      if (reasons === undefined) throw unavailable('TransactWriteItems', err);
      if (reasons.includes('ConditionalCheckFailed')) return reasons;
      if (!reasons.includes('TransactionConflict')) throw unavailable('TransactWriteItems', err);
      if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError(entity, id);
      await sleep(10 * 2 ** attempt * (0.5 + Math.random()));
    }
  }
}

class DynamoClientCertificateStore implements ClientCertificateStore {
  constructor(private readonly table: Table) {}

  async create(certificate: ClientCertificate, limit?: { maxActive: number; now: number }): Promise<void> {
    const certPut: TransactItem = {
      Put: {
        TableName: this.table.name,
        Item: clientCertificateItem(certificate),
        ConditionExpression: NOT_EXISTS.condition,
        ExpressionAttributeNames: NOT_EXISTS.names,
      },
    };
    const expiryPut: TransactItem = {
      Put: { TableName: this.table.name, Item: { ...expiryEntryKey(certificate), itemType: str('certificateExpiry'), serial: str(certificate.serial) } },
    };
    if (!limit) {
      const reasons = await transact(this.table, [certPut, expiryPut], 'client certificate', certificate.serial);
      if (reasons) throw new CertificateExistsError(certificate.serial);
      return;
    }
    const ownerKey = certificateOwnerKey(certificate.owner);
    for (let attempt = 1; ; attempt++) {
      const ownerItem = await this.table.get(K.certOwnerPrefix + ownerKey, K.certOwnerSort);
      const version = ownerItem === undefined ? undefined : readN(ownerItem, 'version');
      const listed = Object.entries(ownerItem?.['active']?.M ?? {}).map(([serial, value]) => ({ serial, expiresAt: Number(value.N) }));
      // The list may name certificates revoked or deleted since: only those still active count.
      const live: { serial: string; expiresAt: number }[] = [];
      for (const entry of listed) {
        if (!(entry.expiresAt > limit.now)) continue;
        const item = await this.table.get(K.clientCertPrefix + entry.serial, K.clientCertSort);
        if (item && readS(item, 'status') === 'active') live.push(entry);
      }
      if (live.length >= limit.maxActive) throw new CertificateLimitError(ownerKey, limit.maxActive);
      const active: Record<string, AttributeValue> = Object.fromEntries(live.map((e) => [e.serial, num(e.expiresAt)]));
      active[certificate.serial] = num(certificate.expiresAt);
      const ownerPut: TransactItem = {
        Put: {
          TableName: this.table.name,
          Item: {
            ...key(K.certOwnerPrefix + ownerKey, K.certOwnerSort),
            itemType: str('certificateOwner'),
            ownerKey: str(ownerKey),
            active: { M: active },
            version: num((version ?? 0) + 1),
          },
          ...(version === undefined
            ? { ConditionExpression: NOT_EXISTS.condition, ExpressionAttributeNames: NOT_EXISTS.names }
            : { ConditionExpression: '#version = :version', ExpressionAttributeNames: { '#version': 'version' }, ExpressionAttributeValues: { ':version': num(version) } }),
        },
      };
      const reasons = await transact(this.table, [certPut, ownerPut, expiryPut], 'client certificate', certificate.serial);
      if (!reasons) return;
      if (reasons[0] === 'ConditionalCheckFailed') throw new CertificateExistsError(certificate.serial);
      // Another issuance for this owner committed in between: read its result and decide again.
      if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError('certificate owner', ownerKey);
      await sleep(5 * 2 ** attempt * (0.5 + Math.random()));
    }
  }

  async get(serial: string): Promise<ClientCertificate | undefined> {
    const item = await this.table.get(K.clientCertPrefix + serial, K.clientCertSort);
    return item && clientCertificateFromItem(item);
  }

  async listByOwner(owner: CertificateOwner): Promise<ClientCertificate[]> {
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression: '#gpk = :gpk AND begins_with(#gsk, :prefix)',
      ExpressionAttributeNames: { '#gpk': GSI1.partitionKey, '#gsk': GSI1.sortKey },
      ExpressionAttributeValues:
        owner.kind === 'user'
          ? { ':gpk': str(K.userPrefix + owner.userId), ':prefix': str(K.clientCertIndexPrefix) }
          : { ':gpk': str(K.sharedCertsIndexPartition), ':prefix': str(`${owner.label}#`) },
      ScanIndexForward: true,
    });
    return items.map(clientCertificateFromItem);
  }

  async listShared(): Promise<ClientCertificate[]> {
    const items = await this.table.query({
      IndexName: GSI1.indexName,
      KeyConditionExpression: '#gpk = :gpk',
      ExpressionAttributeNames: { '#gpk': GSI1.partitionKey },
      ExpressionAttributeValues: { ':gpk': str(K.sharedCertsIndexPartition) },
      ScanIndexForward: true,
    });
    return items.map(clientCertificateFromItem);
  }

  async revoke(serial: string, at: number, reason: RevocationReason): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(serial);
      if (!current) throw new NotFoundError('client certificate', serial);
      if (current.status !== 'active') return { certificate: current, changed: false };
      const reasons = await transact(
        this.table,
        [
          {
            Update: {
              TableName: this.table.name,
              Key: key(K.clientCertPrefix + serial, K.clientCertSort),
              UpdateExpression: 'SET #status = :revoked, #revokedAt = :at, #reason = :reason',
              ConditionExpression: '#status = :active',
              ExpressionAttributeNames: { '#status': 'status', '#revokedAt': 'revokedAt', '#reason': 'revocationReason' },
              ExpressionAttributeValues: { ':revoked': str('revoked'), ':active': str('active'), ':at': num(at), ':reason': str(reason) },
            },
          },
          { Put: { TableName: this.table.name, Item: revocationItem(current, at, reason) } },
          { Delete: { TableName: this.table.name, Key: expiryEntryKey(current) } },
        ],
        'client certificate',
        serial,
      );
      if (!reasons) return { certificate: { ...current, status: 'revoked', revokedAt: at, revocationReason: reason }, changed: true };
      // Someone else revoked or deleted it first: the next round reads their result.
      if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError('client certificate', serial);
    }
  }

  async markDeleted(serial: string, at: number): Promise<{ certificate: ClientCertificate; changed: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.get(serial);
      if (!current) throw new NotFoundError('client certificate', serial);
      if (current.status === 'deleted') return { certificate: current, changed: false };
      const wasActive = current.status === 'active';
      const certKey = key(K.clientCertPrefix + serial, K.clientCertSort);
      const items: TransactItem[] = wasActive
        ? [
            {
              // An active certificate is revoked as it is deleted: a deleted certificate must stay refused.
              Update: {
                TableName: this.table.name,
                Key: certKey,
                UpdateExpression: 'SET #status = :deleted, #deletedAt = :at, #revokedAt = :at, #reason = :reason',
                ConditionExpression: '#status = :active',
                ExpressionAttributeNames: { '#status': 'status', '#deletedAt': 'deletedAt', '#revokedAt': 'revokedAt', '#reason': 'revocationReason' },
                ExpressionAttributeValues: { ':deleted': str('deleted'), ':active': str('active'), ':at': num(at), ':reason': str('cessationOfOperation') },
              },
            },
            { Put: { TableName: this.table.name, Item: revocationItem(current, at, 'cessationOfOperation') } },
            { Delete: { TableName: this.table.name, Key: expiryEntryKey(current) } },
          ]
        : [
            {
              Update: {
                TableName: this.table.name,
                Key: certKey,
                UpdateExpression: 'SET #status = :deleted, #deletedAt = :at',
                ConditionExpression: '#status = :revoked',
                ExpressionAttributeNames: { '#status': 'status', '#deletedAt': 'deletedAt' },
                ExpressionAttributeValues: { ':deleted': str('deleted'), ':revoked': str('revoked'), ':at': num(at) },
              },
            },
          ];
      const reasons = await transact(this.table, items, 'client certificate', serial);
      if (!reasons) {
        return {
          certificate: {
            ...current,
            status: 'deleted',
            deletedAt: at,
            ...(wasActive ? { revokedAt: at, revocationReason: 'cessationOfOperation' as const } : {}),
          },
          changed: true,
        };
      }
      if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError('client certificate', serial);
    }
  }

  async listRevoked(): Promise<RevokedCertificateEntry[]> {
    const items = await this.table.query({
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': PK },
      ExpressionAttributeValues: { ':pk': str(K.revokedCertsPartition) },
      ConsistentRead: true,
    });
    return items.map((item) => ({
      serial: readS(item, 'serial'),
      revokedAt: readN(item, 'revokedAt'),
      reason: revocationReasonOf(readS(item, 'reason')),
      expiresAt: readN(item, 'expiresAt'),
    }));
  }

  async listExpiring(after: number, until: number): Promise<ClientCertificate[]> {
    if (!(until > after)) return [];
    // Sort keys are <expiresAt>#<serial>; '#' sorts before every hex digit and '~' after, so
    // this range is exactly after < expiresAt <= until.
    const entries = await this.table.query({
      KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :from AND :to',
      ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
      ExpressionAttributeValues: {
        ':pk': str(K.certExpiryPartition),
        ':from': str(`${sortableTime(after)}#~`),
        ':to': str(`${sortableTime(until)}#~`),
      },
      ConsistentRead: true,
    });
    const certificates = await inBatches(entries, DELETE_CONCURRENCY, (entry) => this.get(readS(entry, 'serial')));
    // The entry and the certificate change in one transaction; the status check only guards
    // against an entry written by an older build.
    return certificates.filter((c): c is ClientCertificate => c !== undefined && c.status === 'active');
  }
}

function deliveryFromItem(item: Item): CertificateDelivery {
  return {
    serial: readS(item, 'serial'),
    sealedPkcs12: readS(item, 'sealedPkcs12'),
    fileName: readS(item, 'fileName'),
    maxDownloads: readN(item, 'maxDownloads'),
    downloads: readN(item, 'downloads'),
    createdAt: readN(item, 'createdAt'),
    expiresAt: readN(item, 'expiresAt'),
  };
}

function downloadLinkFromItem(item: Item): CertificateDownloadLink {
  const usedAt = readOptN(item, 'usedAt');
  return {
    id: readS(item, 'id'),
    serial: readS(item, 'serial'),
    createdAt: readN(item, 'createdAt'),
    expiresAt: readN(item, 'expiresAt'),
    createdBy: readS(item, 'createdBy'),
    ...(usedAt === undefined ? {} : { usedAt }),
  };
}

class DynamoCertificateDeliveryStore implements CertificateDeliveryStore {
  constructor(private readonly table: Table) {}

  async create(delivery: CertificateDelivery): Promise<void> {
    const item: Item = {
      ...key(K.certDeliveryPrefix + delivery.serial, K.certDeliverySort),
      [TTL]: ttlOf(delivery.expiresAt),
      itemType: str('certificateDelivery'),
      serial: str(delivery.serial),
      sealedPkcs12: str(delivery.sealedPkcs12),
      fileName: str(delivery.fileName),
      maxDownloads: num(delivery.maxDownloads),
      downloads: num(delivery.downloads),
      createdAt: num(delivery.createdAt),
      expiresAt: num(delivery.expiresAt),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new StoreError(`a delivery for certificate ${delivery.serial} already exists`);
  }

  async get(serial: string): Promise<CertificateDelivery | undefined> {
    const item = await this.table.get(K.certDeliveryPrefix + serial, K.certDeliverySort);
    return item && deliveryFromItem(item);
  }

  async claimDownload(serial: string, now: number): Promise<CertificateDelivery | undefined> {
    // ADD under a condition on the count, the limit and the expiry: one request, so concurrent
    // downloads on any number of nodes never pass maxDownloads.
    const updated = await this.table.update(K.certDeliveryPrefix + serial, K.certDeliverySort, 'ADD #downloads :one', {
      condition: 'attribute_exists(#pk) AND #downloads < #maxDownloads AND #expiresAt > :now',
      names: { '#pk': PK, '#downloads': 'downloads', '#maxDownloads': 'maxDownloads', '#expiresAt': 'expiresAt' },
      values: { ':one': num(1), ':now': num(now) },
    });
    if (!updated) return undefined;
    const delivery = deliveryFromItem(updated);
    if (delivery.downloads >= delivery.maxDownloads) {
      // The last allowed download: the file is not kept a moment longer than needed.
      await this.table.delete(K.certDeliveryPrefix + serial, K.certDeliverySort);
    }
    return delivery;
  }

  async delete(serial: string): Promise<void> {
    await this.table.delete(K.certDeliveryPrefix + serial, K.certDeliverySort);
  }

  async createLink(link: CertificateDownloadLink): Promise<void> {
    const item: Item = {
      ...key(K.certLinkPrefix + link.id, K.certLinkSort),
      [TTL]: ttlOf(link.expiresAt),
      itemType: str('certificateDownloadLink'),
      id: str(link.id),
      serial: str(link.serial),
      createdAt: num(link.createdAt),
      expiresAt: num(link.expiresAt),
      createdBy: str(link.createdBy),
      ...(link.usedAt === undefined ? {} : { usedAt: num(link.usedAt) }),
    };
    if (!(await this.table.put(item, NOT_EXISTS))) throw new StoreError('download link already exists');
  }

  async consumeLink(id: string, now: number): Promise<CertificateDownloadLink> {
    const updated = await this.table.update(K.certLinkPrefix + id, K.certLinkSort, 'SET #usedAt = :now', {
      condition: 'attribute_exists(#pk) AND attribute_not_exists(#usedAt) AND #expiresAt > :now',
      names: { '#pk': PK, '#usedAt': 'usedAt', '#expiresAt': 'expiresAt' },
      values: { ':now': num(now) },
    });
    if (updated) return downloadLinkFromItem(updated);
    // Refused; a read names the reason (a link never becomes usable again).
    const existing = await this.table.get(K.certLinkPrefix + id, K.certLinkSort);
    if (!existing) throw new DownloadLinkUnusableError('unknown');
    if (readOptN(existing, 'usedAt') !== undefined) throw new DownloadLinkUnusableError('used');
    throw new DownloadLinkUnusableError('expired');
  }
}

// ---------------------------------------------------------------------------------------------
// Named documents: DOC#<kind> / <id>. Expiry is kept in milliseconds (expiresAt, for readers and
// conditions) and in seconds (ttl, for DynamoDB's own removal).

/** Upper bound for ids under a prefix: ids hold no control characters, so this sorts after all of them. */
const ID_CEILING = '\u{10FFFF}\u{10FFFF}';

function documentFromItem(item: Item): StoredDocument {
  const expiresAt = readOptN(item, 'expiresAt');
  return {
    kind: readS(item, PK).slice(K.documentPrefix.length),
    id: readS(item, SK),
    body: readS(item, 'body'),
    version: readN(item, 'version'),
    updatedAt: readN(item, 'updatedAt'),
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

const documentIsLive = (doc: StoredDocument, now: number): boolean => doc.expiresAt === undefined || doc.expiresAt > now;

class DynamoDocumentStore implements DocumentStore {
  constructor(private readonly table: Table) {}

  async get(kind: string, id: string, now: number): Promise<StoredDocument | undefined> {
    checkDocumentKey(kind, id);
    const item = await this.table.get(K.documentPrefix + kind, id);
    const doc = item && documentFromItem(item);
    return doc && documentIsLive(doc, now) ? doc : undefined;
  }

  async put(doc: DocumentWrite, opts: { readonly now: number; readonly expectedVersion?: number }): Promise<StoredDocument> {
    checkDocumentWrite(doc, opts.expectedVersion);
    if (opts.expectedVersion !== undefined) {
      const stored = await this.write(doc, opts.now, opts.expectedVersion);
      if (!stored) throw new ConcurrentUpdateError('document', `${doc.kind}/${doc.id}`);
      return stored;
    }
    // Unconditional: read the live version, then write on it; a racing writer makes us read again.
    for (let attempt = 1; ; attempt++) {
      const live = await this.get(doc.kind, doc.id, opts.now);
      const stored = await this.write(doc, opts.now, live?.version ?? 0);
      if (stored) return stored;
      if (attempt >= TRANSACTION_ATTEMPTS) throw new ConcurrentUpdateError('document', `${doc.kind}/${doc.id}`);
    }
  }

  /** Writes version expected+1 when the live version is `expected` (0: absent or expired); undefined when it is not. */
  private async write(doc: DocumentWrite, now: number, expected: number): Promise<StoredDocument | undefined> {
    const stored: StoredDocument = {
      kind: doc.kind,
      id: doc.id,
      body: doc.body,
      version: expected + 1,
      updatedAt: now,
      ...(doc.expiresAt === undefined ? {} : { expiresAt: doc.expiresAt }),
    };
    const item: Item = {
      ...key(K.documentPrefix + doc.kind, doc.id),
      body: str(doc.body),
      version: num(stored.version),
      updatedAt: num(now),
      ...(doc.expiresAt === undefined ? {} : { expiresAt: num(doc.expiresAt), [TTL]: ttlOf(doc.expiresAt) }),
    };
    const condition: ConditionalOptions =
      expected === 0
        ? { condition: 'attribute_not_exists(#pk) OR #exp <= :now', names: { '#pk': PK, '#exp': 'expiresAt' }, values: { ':now': num(now) } }
        : {
            condition: '#v = :v AND (attribute_not_exists(#exp) OR #exp > :now)',
            names: { '#v': 'version', '#exp': 'expiresAt' },
            values: { ':v': num(expected), ':now': num(now) },
          };
    return (await this.table.put(item, condition)) ? stored : undefined;
  }

  async delete(kind: string, id: string, expectedVersion?: number): Promise<boolean> {
    checkDocumentKey(kind, id);
    if (expectedVersion === undefined) return (await this.table.delete(K.documentPrefix + kind, id)) !== undefined;
    const old = await this.table.delete(K.documentPrefix + kind, id, {
      condition: '#v = :v',
      names: { '#v': 'version' },
      values: { ':v': num(expectedVersion) },
    });
    if (!old) throw new ConcurrentUpdateError('document', `${kind}/${id}`);
    return true;
  }

  async list(
    kind: string,
    opts: { readonly now: number; readonly prefix?: string; readonly limit?: number; readonly cursor?: string },
  ): Promise<{ documents: StoredDocument[]; cursor?: string }> {
    checkDocumentKey(kind, 'x');
    const limit = pageSize(opts.limit);
    const after = decodeDocumentCursor(opts.cursor);
    const prefix = opts.prefix ?? '';
    const names: Record<string, string> = { '#pk': PK };
    const values: Item = { ':pk': str(K.documentPrefix + kind) };
    let range = '';
    if (prefix) {
      // The page starts after the cursor or at the prefix, whichever is later; ids hold no U+0000.
      const low = after !== undefined && after + '\u0000' > prefix ? after + '\u0000' : prefix;
      range = ' AND #sk BETWEEN :lo AND :hi';
      names['#sk'] = SK;
      values[':lo'] = str(low);
      values[':hi'] = str(prefix + ID_CEILING);
    } else if (after !== undefined) {
      range = ' AND #sk > :after';
      names['#sk'] = SK;
      values[':after'] = str(after);
    }
    const items = await this.table.query(
      { KeyConditionExpression: `#pk = :pk${range}`, ExpressionAttributeNames: names, ExpressionAttributeValues: values, ConsistentRead: true },
      limit + 1,
      (item) => documentIsLive(documentFromItem(item), opts.now),
    );
    const documents = items.slice(0, limit).map(documentFromItem);
    return items.length > limit ? { documents, cursor: encodeDocumentCursor(documents[documents.length - 1]!.id) } : { documents };
  }
}
