import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { KanmonPropsError, isEmail, requireLiteral, show } from './validation.js';

export interface KanmonAlertsProps {
  /** Addresses that receive alarms and the runtime's notifications; each must confirm the subscription e-mail. */
  readonly emails: readonly string[];
}

/**
 * The administrators' channel: a KMS-encrypted SNS topic with e-mail subscriptions. Alarms
 * publish to it, and so does the runtime (self-check state changes, lockouts, new
 * administrators, CA events).
 */
export class KanmonAlerts extends Construct {
  public readonly topic: sns.Topic;
  /** Encrypts the topic. Separate from the store key, because CloudWatch must be allowed to use it. */
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: KanmonAlertsProps) {
    super(scope, id);
    if (props.emails.length === 0) {
      throw new KanmonPropsError(this, `option 'emails' must list at least one e-mail address, got []`);
    }
    props.emails.forEach((email, i) => {
      requireLiteral(this, `emails[${i}]`, email);
      if (!isEmail(email)) throw new KanmonPropsError(this, `option 'emails[${i}]' must be an e-mail address, got ${show(email)}`);
    });

    this.key = new kms.Key(this, 'Key', {
      description: `Kanmon (${Stack.of(this).stackName}): encrypts the alert topic`,
      enableKeyRotation: true,
      pendingWindow: Duration.days(7),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // CloudWatch alarms publish as the CloudWatch service, which needs the key to encrypt.
    this.key.grant(
      new iam.ServicePrincipal('cloudwatch.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
      }),
      'kms:Decrypt',
      'kms:GenerateDataKey*',
    );

    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Kanmon alerts',
      masterKey: this.key,
      enforceSSL: true,
    });
    for (const email of new Set(props.emails)) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
  }
}
