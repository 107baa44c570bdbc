import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { TABLE_SCHEMA } from '../runtime/store/dynamodb/schema.js';
import { requireInteger } from './validation.js';

export interface KanmonStoreProps {
  /**
   * How many days back point-in-time recovery can restore to.
   * @default 35
   */
  readonly pointInTimeRecoveryDays?: number;
  /**
   * Days KMS waits before deleting the key once its deletion is scheduled by hand.
   * (The key itself is retained when the stack is deleted.)
   * @default 30
   */
  readonly keyPendingWindowDays?: number;
}

/**
 * All of Kanmon's state: one DynamoDB table with the runtime's key schema, and one
 * customer-managed KMS key that encrypts both the table and the runtime's secrets
 * (JWT signing keys, TOTP secrets, the client-certificate CA key).
 *
 * Both are retained when the stack is deleted: losing them loses every user's passkeys.
 */
export class KanmonStore extends Construct {
  public readonly table: dynamodb.Table;
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: KanmonStoreProps = {}) {
    super(scope, id);
    requireInteger(this, 'pointInTimeRecoveryDays', props.pointInTimeRecoveryDays, 1, 35);
    requireInteger(this, 'keyPendingWindowDays', props.keyPendingWindowDays, 7, 30);

    this.key = new kms.Key(this, 'Key', {
      description: `Kanmon (${Stack.of(this).stackName}): encrypts the store table and the runtime's secrets`,
      enableKeyRotation: true,
      pendingWindow: Duration.days(props.keyPendingWindowDays ?? 30),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: TABLE_SCHEMA.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_SCHEMA.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: true,
        recoveryPeriodInDays: props.pointInTimeRecoveryDays ?? 35,
      },
      deletionProtection: true,
      timeToLiveAttribute: TABLE_SCHEMA.ttlAttribute,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of TABLE_SCHEMA.globalSecondaryIndexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
  }
}
