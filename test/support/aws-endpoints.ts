/**
 * Local protocol-level stand-ins for the two AWS APIs the runtime calls on AWS:
 *
 * - KMS (AWS JSON 1.1 protocol, `X-Amz-Target: TrentService.<Operation>`): GenerateDataKey and
 *   Decrypt, nothing else.
 * - SNS (AWS Query protocol, form-encoded `Action=Publish`, XML answers): Publish, nothing else.
 *
 * KMS and SNS cannot run on this machine, and no AWS account is reachable from tests. These
 * endpoints are not emulators of the services: they speak exactly enough of each wire protocol
 * for the real AWS SDK clients to work against them unchanged (request shapes, response
 * shapes, error encoding), and they enforce the rules our code relies on. The KMS stand-in
 * really encrypts data keys under its own AES-256-GCM master keys, binds the EncryptionContext
 * as additional authenticated data, and so refuses a Decrypt with a different context with
 * InvalidCiphertextException, as KMS does. The SNS stand-in checks Subject and MessageAttributes
 * the way the Publish API documents, and records what it accepted.
 *
 * Requests must carry a SigV4 Authorization header; its credential scope (access key, region,
 * service) is checked and recorded, but the signature itself is not recomputed.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const TEST_ACCOUNT = '111122223333';
// Not frozen: the SDK tags the credentials object it is given with where it came from.
export const TEST_CREDENTIALS = { accessKeyId: 'AKIAKANMONTESTONLY00', secretAccessKey: 'kanmon-test-secret-key-not-a-real-one' };

export interface RecordedCall {
  readonly service: 'kms' | 'sns';
  readonly operation: string;
  /** Region from the SigV4 credential scope. */
  readonly region: string;
}

export interface KmsCall extends RecordedCall {
  readonly service: 'kms';
  readonly keyId?: string;
  readonly encryptionContext?: Record<string, string>;
}

export interface PublishedMessage {
  readonly topicArn: string;
  readonly subject?: string;
  readonly message: string;
  readonly attributes: Record<string, { readonly dataType: string; readonly stringValue?: string }>;
  readonly messageId: string;
  readonly region: string;
}

export interface InjectedFailure {
  /** HTTP status to answer with. */
  readonly status: number;
  /** KMS `__type` / SNS `<Code>`. */
  readonly code: string;
  readonly message: string;
}

export interface KmsKey {
  readonly keyId: string;
  readonly arn: string;
}

export interface FakeKms {
  /** The first key, also reachable as `alias/kanmon-test`. */
  readonly key: KmsKey;
  readonly alias: string;
  createKey(): KmsKey;
  readonly calls: KmsCall[];
  /** Every KMS request fails this way until set to undefined. */
  failure: InjectedFailure | undefined;
}

export interface FakeSns {
  /** A topic that exists from the start. */
  readonly topicArn: string;
  createTopic(name: string): string;
  readonly published: PublishedMessage[];
  /** Every Publish fails this way until set to undefined; 'hang' never answers. */
  failure: InjectedFailure | 'hang' | undefined;
}

export interface AwsEndpoints {
  /** http://127.0.0.1:<port>, for the SDK clients' `endpoint`. */
  readonly url: string;
  readonly region: string;
  readonly credentials: typeof TEST_CREDENTIALS;
  readonly kms: FakeKms;
  readonly sns: FakeSns;
  /** Every request, both services, in arrival order. */
  readonly calls: RecordedCall[];
  close(): Promise<void>;
}

export async function startAwsEndpoints(opts: { region?: string } = {}): Promise<AwsEndpoints> {
  const region = opts.region ?? 'ap-northeast-1';
  const calls: RecordedCall[] = [];

  // ---- KMS state ----
  const masterKeys = new Map<string, Buffer>(); // key id -> 256-bit master key
  const newKey = (): KmsKey => {
    const keyId = randomUUID();
    masterKeys.set(keyId, randomBytes(32));
    return { keyId, arn: `arn:aws:kms:${region}:${TEST_ACCOUNT}:key/${keyId}` };
  };
  const firstKey = newKey();
  const alias = 'alias/kanmon-test';
  const kmsCalls: KmsCall[] = [];
  const kms: FakeKms = { key: firstKey, alias, createKey: newKey, calls: kmsCalls, failure: undefined };

  // ---- SNS state ----
  const topics = new Set<string>();
  const createTopic = (name: string) => {
    const arn = `arn:aws:sns:${region}:${TEST_ACCOUNT}:${name}`;
    topics.add(arn);
    return arn;
  };
  const sns: FakeSns = { topicArn: createTopic('kanmon-alerts'), createTopic, published: [], failure: undefined };

  /** KMS KeyId forms: key id, key ARN, alias name, alias ARN (KMS API reference, "KeyId"). */
  const resolveKey = (keyId: string): string | undefined => {
    if (masterKeys.has(keyId)) return keyId;
    const arnMatch = /^arn:aws:kms:([^:]+):(\d{12}):key\/(.+)$/.exec(keyId);
    if (arnMatch && arnMatch[1] === region && arnMatch[2] === TEST_ACCOUNT && masterKeys.has(arnMatch[3]!)) return arnMatch[3];
    if (keyId === alias || keyId === `arn:aws:kms:${region}:${TEST_ACCOUNT}:${alias}`) return firstKey.keyId;
    return undefined;
  };
  const arnOf = (keyId: string) => `arn:aws:kms:${region}:${TEST_ACCOUNT}:key/${keyId}`;

  const handleKms = (operation: string, input: Record<string, unknown>, scopeRegion: string): { status: number; body: unknown } => {
    const context = input.EncryptionContext as Record<string, string> | undefined;
    kmsCalls.push({
      service: 'kms',
      operation,
      region: scopeRegion,
      ...(typeof input.KeyId === 'string' ? { keyId: input.KeyId } : {}),
      ...(context ? { encryptionContext: context } : {}),
    });
    if (kms.failure) return kmsError(kms.failure.status, kms.failure.code, kms.failure.message);
    if (context !== undefined && !isStringMap(context)) return kmsError(400, 'ValidationException', 'EncryptionContext must map strings to strings');

    if (operation === 'GenerateDataKey') {
      if (typeof input.KeyId !== 'string') return kmsError(400, 'ValidationException', "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null");
      const keyId = resolveKey(input.KeyId);
      if (!keyId) return kmsError(400, 'NotFoundException', `Key '${input.KeyId}' does not exist`);
      let size: number;
      if (input.KeySpec !== undefined && input.NumberOfBytes !== undefined) return kmsError(400, 'ValidationException', 'Specify KeySpec or NumberOfBytes, not both');
      if (input.KeySpec === 'AES_256') size = 32;
      else if (input.KeySpec === 'AES_128') size = 16;
      else if (typeof input.NumberOfBytes === 'number' && input.NumberOfBytes >= 1 && input.NumberOfBytes <= 1024) size = input.NumberOfBytes;
      else return kmsError(400, 'ValidationException', 'KeySpec or NumberOfBytes is required');
      const plaintext = randomBytes(size);
      return {
        status: 200,
        body: { KeyId: arnOf(keyId), CiphertextBlob: sealDataKey(keyId, masterKeys.get(keyId)!, plaintext, context ?? {}).toString('base64'), Plaintext: plaintext.toString('base64') },
      };
    }

    // Decrypt
    if (typeof input.CiphertextBlob !== 'string') return kmsError(400, 'ValidationException', 'CiphertextBlob is required');
    if (input.EncryptionAlgorithm !== undefined && input.EncryptionAlgorithm !== 'SYMMETRIC_DEFAULT') {
      return kmsError(400, 'InvalidCiphertextException', 'unsupported EncryptionAlgorithm for this key');
    }
    const blob = Buffer.from(input.CiphertextBlob, 'base64');
    const parsed = parseBlob(blob);
    if (!parsed || !masterKeys.has(parsed.keyId)) return kmsError(400, 'InvalidCiphertextException', '');
    if (typeof input.KeyId === 'string') {
      const asked = resolveKey(input.KeyId);
      if (!asked) return kmsError(400, 'NotFoundException', `Key '${input.KeyId}' does not exist`);
      // KMS refuses a ciphertext made under a key other than the one named (IncorrectKeyException).
      if (asked !== parsed.keyId) return kmsError(400, 'IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
    const plaintext = openDataKey(parsed, masterKeys.get(parsed.keyId)!, context ?? {});
    // A context that differs in any key or value fails authentication, and KMS reports that as
    // InvalidCiphertextException without saying why.
    if (!plaintext) return kmsError(400, 'InvalidCiphertextException', '');
    return { status: 200, body: { KeyId: arnOf(parsed.keyId), Plaintext: plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' } };
  };

  const handleSns = (form: URLSearchParams, scopeRegion: string): { status: number; body: string } | 'hang' => {
    const action = form.get('Action') ?? '';
    calls.push({ service: 'sns', operation: action, region: scopeRegion });
    if (action !== 'Publish') return { status: 400, body: queryError('Sender', 'InvalidAction', `The action ${action} is not valid for this endpoint.`) };
    if (form.get('Version') !== '2010-03-31') return { status: 400, body: queryError('Sender', 'InvalidParameterValue', 'Version must be 2010-03-31') };
    if (sns.failure === 'hang') return 'hang';
    if (sns.failure) return { status: sns.failure.status, body: queryError(sns.failure.status >= 500 ? 'Receiver' : 'Sender', sns.failure.code, sns.failure.message) };

    const topicArn = form.get('TopicArn') ?? '';
    if (!topics.has(topicArn)) return { status: 404, body: queryError('Sender', 'NotFound', 'Topic does not exist') };
    const message = form.get('Message');
    if (message === null || message.length === 0) return { status: 400, body: queryError('Sender', 'InvalidParameter', 'Invalid parameter: Empty message') };
    if (Buffer.byteLength(message, 'utf8') > 262_144) {
      return { status: 400, body: queryError('Sender', 'InvalidParameter', 'Invalid parameter: Message too long') };
    }
    const subject = form.get('Subject');
    // Publish API reference, Subject: "must be UTF-8 text with no line breaks or control
    // characters, and less than 100 characters long". SNS e-mail delivery needs it ASCII.
    if (subject !== null && (subject.length === 0 || subject.length >= 100 || !/^[\x20-\x7e]+$/.test(subject) || /^\s/.test(subject))) {
      return { status: 400, body: queryError('Sender', 'InvalidParameter', 'Invalid parameter: Subject') };
    }
    const attributes: PublishedMessage['attributes'] = {};
    for (let n = 1; form.has(`MessageAttributes.entry.${n}.Name`); n++) {
      const name = form.get(`MessageAttributes.entry.${n}.Name`)!;
      const dataType = form.get(`MessageAttributes.entry.${n}.Value.DataType`) ?? '';
      const stringValue = form.get(`MessageAttributes.entry.${n}.Value.StringValue`) ?? undefined;
      // Message attribute rules from the SNS developer guide ("Amazon SNS message attributes").
      if (!/^[A-Za-z0-9_.-]{1,256}$/.test(name) || name.includes('..') || /^(AWS\.|Amazon\.)/i.test(name) || name.startsWith('.') || name.endsWith('.')) {
        return { status: 400, body: queryError('Sender', 'ParameterValueInvalid', `The message attribute '${name}' has an invalid message attribute name.`) };
      }
      if (!/^(String|Number|Binary|String\.Array)(\..+)?$/.test(dataType)) {
        return { status: 400, body: queryError('Sender', 'ParameterValueInvalid', `The message attribute '${name}' has an invalid message attribute type.`) };
      }
      if (dataType.startsWith('String') && (stringValue === undefined || stringValue.length === 0)) {
        return { status: 400, body: queryError('Sender', 'ParameterValueInvalid', `The message attribute '${name}' must contain non-empty message attribute value.`) };
      }
      attributes[name] = { dataType, ...(stringValue !== undefined ? { stringValue } : {}) };
    }
    const messageId = randomUUID();
    sns.published.push({ topicArn, ...(subject !== null ? { subject } : {}), message, attributes, messageId, region: scopeRegion });
    return {
      status: 200,
      body:
        `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${messageId}</MessageId></PublishResult>` +
        `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`,
    };
  };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const scope = credentialScope(req.headers.authorization);
    const target = req.headers['x-amz-target'];

    if (typeof target === 'string') {
      // AWS JSON 1.1: POST / with X-Amz-Target "TrentService.<Operation>".
      if (!scope || scope.service !== 'kms') return sendJson(res, 400, kmsErrorBody('MissingAuthenticationTokenException', 'Missing or malformed SigV4 Authorization for kms'));
      const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
      calls.push({ service: 'kms', operation, region: scope.region });
      if (req.method !== 'POST' || !String(req.headers['content-type']).startsWith('application/x-amz-json-1.1')) {
        return sendJson(res, 400, kmsErrorBody('SerializationException', 'expected POST with application/x-amz-json-1.1'));
      }
      if (operation !== 'GenerateDataKey' && operation !== 'Decrypt') {
        return sendJson(res, 400, kmsErrorBody('UnknownOperationException', `${target} is not served by this stand-in`));
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body || '{}') as Record<string, unknown>;
      } catch {
        return sendJson(res, 400, kmsErrorBody('SerializationException', 'body is not JSON'));
      }
      const answer = handleKms(operation, input, scope.region);
      return sendJson(res, answer.status, answer.body);
    }

    // AWS Query: POST / with a form body naming the Action.
    if (!scope || scope.service !== 'sns') {
      res.writeHead(403, { 'content-type': 'text/xml' });
      return res.end(queryError('Sender', 'MissingAuthenticationToken', 'Missing or malformed SigV4 Authorization for sns'));
    }
    const answer = handleSns(new URLSearchParams(body), scope.region);
    if (answer === 'hang') return; // the client's timeout, or close(), ends it
    res.writeHead(answer.status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
    res.end(answer.body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    region,
    credentials: TEST_CREDENTIALS,
    kms,
    sns,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, SignedHeaders=…, Signature=…` */
function credentialScope(header: string | undefined): { region: string; service: string } | undefined {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$/.exec(header ?? '');
  if (!m || m[1] !== TEST_CREDENTIALS.accessKeyId) return undefined;
  return { region: m[3]!, service: m[4]! };
}

// ---- KMS ciphertext blobs: this stand-in's own opaque format, like KMS's ----
// [0x4b 'K'][key id length][key id][12-byte IV][ciphertext][16-byte GCM tag]

function canonicalContext(context: Record<string, string>): Buffer {
  // Order-independent, like KMS: {a,b} and {b,a} are the same context.
  return Buffer.from(JSON.stringify(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), 'utf8');
}

function sealDataKey(keyId: string, master: Buffer, plaintext: Buffer, context: Record<string, string>): Buffer {
  const iv = randomBytes(12);
  const id = Buffer.from(keyId, 'ascii');
  const cipher = createCipheriv('aes-256-gcm', master, iv);
  cipher.setAAD(Buffer.concat([id, canonicalContext(context)]));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([0x4b, id.length]), id, iv, body, cipher.getAuthTag()]);
}

interface ParsedBlob {
  readonly keyId: string;
  readonly iv: Buffer;
  readonly body: Buffer;
  readonly tag: Buffer;
}

function parseBlob(blob: Buffer): ParsedBlob | undefined {
  if (blob.length < 2 || blob[0] !== 0x4b) return undefined;
  const idLength = blob[1]!;
  if (blob.length < 2 + idLength + 12 + 16) return undefined;
  const keyId = blob.subarray(2, 2 + idLength).toString('ascii');
  const iv = blob.subarray(2 + idLength, 2 + idLength + 12);
  return { keyId, iv, body: blob.subarray(2 + idLength + 12, blob.length - 16), tag: blob.subarray(blob.length - 16) };
}

function openDataKey(blob: ParsedBlob, master: Buffer, context: Record<string, string>): Buffer | undefined {
  const decipher = createDecipheriv('aes-256-gcm', master, blob.iv);
  decipher.setAAD(Buffer.concat([Buffer.from(blob.keyId, 'ascii'), canonicalContext(context)]));
  decipher.setAuthTag(blob.tag);
  try {
    return Buffer.concat([decipher.update(blob.body), decipher.final()]);
  } catch {
    return undefined;
  }
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

function kmsErrorBody(type: string, message: string): unknown {
  return { __type: type, message };
}

function kmsError(status: number, type: string, message: string): { status: number; body: unknown } {
  return { status, body: kmsErrorBody(type, message) };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() };
  if (status >= 400 && typeof body === 'object' && body && '__type' in body) headers['x-amzn-errortype'] = String((body as { __type: string }).__type);
  res.writeHead(status, headers);
  res.end(text);
}

function queryError(type: 'Sender' | 'Receiver', code: string, message: string): string {
  return (
    `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>${type}</Type><Code>${xml(code)}</Code>` +
    `<Message>${xml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`
  );
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
