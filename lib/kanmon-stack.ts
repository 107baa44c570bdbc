import { Stack, Token, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { Kanmon, type KanmonProps } from './kanmon.js';
import { KanmonPropsError, show } from './validation.js';

/**
 * Props of the `Kanmon` stack: everything {@link KanmonProps} takes, plus by-reference forms of
 * the existing resources it can use, so an app (or `cdk -c …` context) can name them by id.
 */
export interface KanmonStackProps extends StackProps, KanmonProps {
  /**
   * Id of the public hosted zone for `domain`; an alternative to `hostedZone`.
   * @default - no hosted zone
   */
  readonly hostedZoneId?: string;
  /**
   * Name of the zone given by `hostedZoneId` (e.g. `example.com`), so the domain can be checked against it.
   * @default - the zone is used by id alone
   */
  readonly hostedZoneName?: string;
  /**
   * ARN of an existing ACM certificate for `certificates: 'acm'`; an alternative to `acmCertificate`.
   * @default - a new DNS-validated certificate
   */
  readonly acmCertificateArn?: string;
  /**
   * ARN of the Secrets Manager secret for `certificates: 'imported'`; an alternative to `certificateSecret`.
   * @default - none
   */
  readonly certificateSecretArn?: string;
  /**
   * Id of an existing VPC, looked up at synth time (needs an explicit account and region); an alternative to `vpc`.
   * @default - a new VPC
   */
  readonly vpcId?: string;
}

/** The `Kanmon` stack: one {@link Kanmon} gateway. */
export class KanmonStack extends Stack {
  public readonly kanmon: Kanmon;

  constructor(scope: Construct, id: string, props: KanmonStackProps) {
    super(scope, id, {
      description: `Kanmon passkey gateway for ${props.domain}`,
      ...props,
      tags: { Application: 'Kanmon', ...props.tags },
    });

    const both = (a: keyof KanmonStackProps, b: keyof KanmonStackProps) => {
      if (props[a] !== undefined && props[b] !== undefined) {
        throw new KanmonPropsError(this, `options '${a}' and '${b}' name the same thing; pass one of them, got both (${show(props[b])})`);
      }
    };
    both('hostedZone', 'hostedZoneId');
    both('acmCertificate', 'acmCertificateArn');
    both('certificateSecret', 'certificateSecretArn');
    both('vpc', 'vpcId');
    if (props.hostedZoneName !== undefined && props.hostedZoneId === undefined) {
      throw new KanmonPropsError(this, `option 'hostedZoneName' needs 'hostedZoneId', got only the name ${show(props.hostedZoneName)}`);
    }
    if (props.vpcId !== undefined && (Token.isUnresolved(this.account) || Token.isUnresolved(this.region))) {
      throw new KanmonPropsError(this, `option 'vpcId' needs the stack's account and region (env), because the VPC is looked up at synth time; got ${show(props.vpcId)} in an environment-agnostic stack`);
    }

    const hostedZone =
      props.hostedZone ??
      (props.hostedZoneId === undefined
        ? undefined
        : props.hostedZoneName !== undefined
          ? route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', { hostedZoneId: props.hostedZoneId, zoneName: props.hostedZoneName })
          : route53.HostedZone.fromHostedZoneId(this, 'HostedZone', props.hostedZoneId));
    const acmCertificate =
      props.acmCertificate ??
      (props.acmCertificateArn === undefined ? undefined : acm.Certificate.fromCertificateArn(this, 'AcmCertificate', props.acmCertificateArn));
    const certificateSecret =
      props.certificateSecret ??
      (props.certificateSecretArn === undefined
        ? undefined
        : /-[A-Za-z0-9]{6}$/.test(props.certificateSecretArn)
          ? secretsmanager.Secret.fromSecretCompleteArn(this, 'CertificateSecret', props.certificateSecretArn)
          : secretsmanager.Secret.fromSecretPartialArn(this, 'CertificateSecret', props.certificateSecretArn));
    const vpc = props.vpc ?? (props.vpcId === undefined ? undefined : ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId }));

    this.kanmon = new Kanmon(this, 'Kanmon', { ...props, hostedZone, acmCertificate, certificateSecret, vpc });
  }
}
