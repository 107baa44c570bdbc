/**
 * The DynamoDB single-table key schema, shared by the runtime store and the CDK stack
 * (lib/ imports this file, so it must not import the AWS SDK or anything with side effects).
 */
export const TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  /**
   * Epoch seconds; DynamoDB's TTL deletes expired challenges, sessions, tokens, TOTP step marks,
   * login-throttle records, certificate deliveries and download links.
   */
  ttlAttribute: 'ttl',
  globalSecondaryIndexes: [
    /**
     * Secondary access patterns (sessions by user, users by username order, audit by user,
     * locked login-throttle keys, client certificates by user and shared-device certificates).
     * Every attribute is projected: the store reads whole items from the index, never a
     * second GetItem per row.
     */
    { indexName: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk', projectionType: 'ALL' },
  ],
} as const;

/**
 * Key values of every item type. A `…#` entry is a prefix followed by an id; the others are
 * literal. Item layout (pk / sk / gsi1pk / gsi1sk / ttl):
 *
 * - user:            USER#<id>           / USER          / USERS           / <username>                  / –
 * - username claim:  USERNAME#<username> / USERNAME      / –               / –                           / –
 * - credential:      CRED#<credId>       / CRED          / USER#<userId>   / CRED#<createdAt>#<credId>   / –
 * - challenge:       CHALLENGE#<value>   / CHALLENGE     / –               / –                           / expiresAt
 * - session:         SESSION#<id>        / SESSION       / USER#<userId>   / SESSION#<createdAt>#<id>    / absoluteExpiresAt
 * - enrollment token:TOKEN#<id>          / TOKEN         / TOKENS#<purpose>/ <userId>#<id>               / expiresAt
 * - signing key:     SIGNINGKEYS         / <kid>         / –               / –                           / –
 * - audit event:     AUDIT#<yyyy-mm-dd>  / <eventId>     / USER#<userId>   / AUDIT#<eventId>             / –
 * - audit day:       AUDITDAYS           / <yyyy-mm-dd>  / –               / –                           / –
 * - TOTP secret:     TOTP#<userId>       / TOTP          / –               / –                           / –
 * - TOTP step mark:  TOTPSTEP#<userId>#<step> / TOTPSTEP / –              / –                           / expiresAt
 * - recovery codes:  RECOVERY#<userId>   / RECOVERY      / –               / –                           / –
 * - login throttle:  THROTTLE#<key>      / THROTTLE      / LOCKED (once locked) / <key>                / expiresAt
 * - client CA:       CA#<id>             / CA            / –               / –                           / –
 * - client cert:     CLIENTCERT#<serial> / CLIENTCERT    / USER#<userId>   / CLIENTCERT#<issuedAt>#<serial> / –
 *   (shared device)                                       / CLIENTCERTS#SHARED / <label>#<issuedAt>#<serial>
 * - cert owner:      CERTOWNER#<ownerKey>/ CERTOWNER     / –               / –                           / –
 *   (the owner's active serials and a version, so the per-user limit is a conditional write)
 * - revocation:      CERTREVOKED         / <serial>      / –               / –                           / –
 * - active by expiry:CERTEXPIRY          / <expiresAt>#<serial> / –        / –                           / –
 * - cert delivery:   CERTDELIVERY#<serial> / CERTDELIVERY / –              / –                           / expiresAt
 * - download link:   CERTLINK#<id>       / CERTLINK      / –               / –                           / expiresAt
 * - document:        DOC#<kind>          / <id>          / –               / –                           / expiresAt (when set)
 *
 * Timestamps inside sort keys are zero-padded epoch milliseconds so that text order is time order.
 */
export const ITEM_KEYS = {
  userPrefix: 'USER#',
  userSort: 'USER',
  usersIndexPartition: 'USERS',
  usernamePrefix: 'USERNAME#',
  usernameSort: 'USERNAME',
  credentialPrefix: 'CRED#',
  credentialSort: 'CRED',
  challengePrefix: 'CHALLENGE#',
  challengeSort: 'CHALLENGE',
  sessionPrefix: 'SESSION#',
  sessionSort: 'SESSION',
  tokenPrefix: 'TOKEN#',
  tokenSort: 'TOKEN',
  tokensIndexPrefix: 'TOKENS#',
  signingKeysPartition: 'SIGNINGKEYS',
  auditDayPrefix: 'AUDIT#',
  auditDaysPartition: 'AUDITDAYS',
  /** gsi1sk prefix of audit events in a user's index partition. */
  auditIndexPrefix: 'AUDIT#',
  totpPrefix: 'TOTP#',
  totpSort: 'TOTP',
  totpStepPrefix: 'TOTPSTEP#',
  totpStepSort: 'TOTPSTEP',
  recoveryPrefix: 'RECOVERY#',
  recoverySort: 'RECOVERY',
  throttlePrefix: 'THROTTLE#',
  throttleSort: 'THROTTLE',
  /** gsi1pk of every login-throttle record that has been locked: the console's list of locks. */
  lockedIndexPartition: 'LOCKED',
  caPrefix: 'CA#',
  caSort: 'CA',
  clientCertPrefix: 'CLIENTCERT#',
  clientCertSort: 'CLIENTCERT',
  /** gsi1sk prefix of a user's client certificates in their USER#<userId> index partition. */
  clientCertIndexPrefix: 'CLIENTCERT#',
  /** gsi1pk of every shared-device certificate. */
  sharedCertsIndexPartition: 'CLIENTCERTS#SHARED',
  certOwnerPrefix: 'CERTOWNER#',
  certOwnerSort: 'CERTOWNER',
  revokedCertsPartition: 'CERTREVOKED',
  certExpiryPartition: 'CERTEXPIRY',
  certDeliveryPrefix: 'CERTDELIVERY#',
  certDeliverySort: 'CERTDELIVERY',
  certLinkPrefix: 'CERTLINK#',
  certLinkSort: 'CERTLINK',
  /** Named documents: DOC#<kind> / <id>; listing is a Query on the kind's partition. */
  documentPrefix: 'DOC#',
} as const;
