/**
 * Constructor validation: every invalid prop is refused at synth time, with a message that
 * names the option and shows the value received.
 */
import { App, Duration, Lazy, Stack } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { describe, expect, it } from 'vitest';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';
import { KanmonAlerts, KanmonNetwork, KanmonStack, KanmonStore, type KanmonStackProps } from '../../lib/index.js';
import { BASE_PROPS, newApp, ROUTES } from './support.js';

function build(props: Partial<KanmonStackProps>, env?: KanmonStackProps['env']): KanmonStack {
  return new KanmonStack(newApp(), 'Kanmon', { ...BASE_PROPS, env, ...props });
}

/** Imported resources live in a helper stack; their ids are literals, so nothing crosses stacks. */
function helper(): Stack {
  return new Stack(new App(), 'Helper');
}

const SECRET_ARN = 'arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:kanmon-cert-AbCdEf';
const MTLS_ROUTE: NonNullable<KanmonConfigInput['routes']>[number] = {
  id: 'admin-console',
  upstream: 'https://10.0.2.5:8443',
  policy: { factors: [['passkey', 'mtls']] },
};

describe('Kanmon throws when', () => {
  it('domain is not a host name', () => {
    expect(() => build({ domain: 'not a domain' })).toThrow(/option 'domain' must be a lower-case host name .*got "not a domain"/);
    expect(() => build({ domain: 'Gate.Example.com' })).toThrow(/got "Gate.Example.com"/);
    expect(() => build({ domain: 'localhost' })).toThrow(/got "localhost"/);
  });

  it('domain is a deploy-time token', () => {
    expect(() => build({ domain: Lazy.string({ produce: () => 'gate.example.com' }) })).toThrow(/option 'domain' must be a literal string known at synth time, got a deploy-time token/);
  });

  it('adminEmails is empty', () => {
    expect(() => build({ adminEmails: [] })).toThrow(/option 'adminEmails' must list at least one e-mail address, got \[\]/);
  });

  it('an admin e-mail is not an address', () => {
    expect(() => build({ adminEmails: ['ops@example.com', 'ops at example.com'] })).toThrow(/option 'adminEmails\[1\]' must be an e-mail address, got "ops at example.com"/);
  });

  it('the hosted zone is not the domain\'s zone', () => {
    expect(() => build({ hostedZone: route53.HostedZone.fromHostedZoneAttributes(helper(), 'Z', { hostedZoneId: 'Z1', zoneName: 'example.org' }) })).toThrow(
      /option 'hostedZone' must be the zone of "gate.example.com" or a parent of it, got zone "example.org"/,
    );
  });

  it('certificates is not a known source', () => {
    expect(() => build({ certificates: 'self-signed' as never })).toThrow(/option 'certificates' must be one of "letsencrypt", "acm", "imported", got "self-signed"/);
  });

  it('letsEncrypt options come with another certificate source', () => {
    expect(() => build({ certificates: 'acm', letsEncrypt: { email: 'pki@example.com' } })).toThrow(/option 'letsEncrypt' applies only to certificates "letsencrypt", got certificates "acm"/);
  });

  it('the ACME contact is not an e-mail address', () => {
    expect(() => build({ letsEncrypt: { email: 'pki' } })).toThrow(/option 'letsEncrypt.email' must be an e-mail address, got "pki"/);
  });

  it('the ACME directory is not a URL (the runtime schema says so)', () => {
    expect(() => build({ letsEncrypt: { directoryUrl: 'letsencrypt' } })).toThrow(/tls: option 'directoryUrl' must be an http\(s\) URL, got "letsencrypt"/);
  });

  it('an ACM certificate comes without certificates "acm"', () => {
    const certificate = acm.Certificate.fromCertificateArn(helper(), 'C', 'arn:aws:acm:ap-northeast-1:111111111111:certificate/abc');
    expect(() => build({ acmCertificate: certificate })).toThrow(/option 'acmCertificate' applies only to certificates "acm", got certificates "letsencrypt"/);
  });

  it('certificates "imported" comes without a secret', () => {
    expect(() => build({ certificates: 'imported' })).toThrow(/option 'certificateSecret' is required with certificates "imported", got nothing/);
  });

  it('a certificate secret comes with another certificate source', () => {
    const secret = secretsmanager.Secret.fromSecretCompleteArn(helper(), 'S', SECRET_ARN);
    expect(() => build({ certificateSecret: secret })).toThrow(/option 'certificateSecret' applies only to certificates "imported", got certificates "letsencrypt"/);
  });

  it('a route needs mtls while the NLB terminates TLS (acm), with the runtime schema\'s message', () => {
    expect(() => build({ certificates: 'acm', config: { routes: [...ROUTES!, MTLS_ROUTE] } })).toThrow(
      /the runtime configuration is invalid:\n {2}- routes: route "admin-console" needs the 'mtls' factor, which is impossible when tls.source is "offloaded"/,
    );
  });

  it('the config file sets what the stack owns', () => {
    expect(() => build({ config: { routes: ROUTES, store: { kind: 'sqlite' }, server: { port: 443 }, tls: { source: 'self-signed-dev' } } })).toThrow(
      /option 'config' must not set 'server.port', 'tls', 'store': the stack sets them from its own resources/,
    );
  });

  it('the config file has no routes', () => {
    expect(() => build({ config: {} })).toThrow(/option 'config' must define at least one route, got nothing/);
    expect(() => build({ config: { routes: [] } })).toThrow(/option 'config' must define at least one route, got \[\]/);
  });

  it('the config file is otherwise invalid, listing every error from the runtime schema', () => {
    const attempt = () => build({ config: { routes: [{ id: 'x', upstream: 'ftp://files' }], session: { idleTimeoutSeconds: 5 } } });
    expect(attempt).toThrow(/the runtime configuration is invalid:\n/);
    expect(attempt).toThrow(/\n {2}- routes\[0\]: option 'upstream' must be an http:\/\/ or https:\/\/ URL.*got "ftp:\/\/files"/);
    expect(attempt).toThrow(/\n {2}- session: option 'idleTimeoutSeconds' must be an integer from 60 .*got 5/);
  });

  it('the config is too large for the task definition', () => {
    const routes = Array.from({ length: 400 }, (_, i) => ({ id: `route-${i}`, match: { host: `app${i}.example.com`, pathPrefix: '/' }, upstream: `http://10.0.${i % 250}.${(i % 200) + 1}:8080`, policy: { allowGroups: ['staff', 'contractors', 'administrators'] } }));
    expect(() => build({ config: { routes } })).toThrow(/option 'config' must serialize to at most 49152 bytes to fit in the task definition, got \d+ bytes/);
  });

  it('there is no NAT but certificates come from Let\'s Encrypt', () => {
    expect(() => build({ natGateways: 0 })).toThrow(/option 'natGateways' must be at least 1 with certificates "letsencrypt", because ACME needs the internet, got 0/);
  });

  it('the metrics namespace from the config is an AWS namespace', () => {
    expect(() => build({ config: { routes: ROUTES, metrics: { namespace: 'AWS/Kanmon' } } })).toThrow(/option 'namespace' must be a custom CloudWatch namespace .*got "AWS\/Kanmon"/);
  });

  it('an alarm threshold is not a positive integer', () => {
    expect(() => build({ alarmThresholds: { proxied5xxPer5Minutes: 0 } })).toThrow(/option 'thresholds.proxied5xxPer5Minutes' must be an integer from 1 to 1000000, got 0/);
    expect(() => build({ alarmThresholds: { loginFailuresPer5Minutes: 2.5 } })).toThrow(/option 'thresholds.loginFailuresPer5Minutes' must be an integer .*got 2.5/);
    expect(() => build({ alarmThresholds: { certificateExpiryDays: 90 } })).toThrow(/option 'thresholds.certificateExpiryDays' must be an integer from 1 to 60, got 90/);
  });

  it('the task size is not a Fargate size', () => {
    expect(() => build({ cpu: 300 })).toThrow(/option 'cpu' must be one of 256, 512, 1024, 2048, 4096, got 300/);
    expect(() => build({ cpu: 256, memoryLimitMiB: 4096 })).toThrow(/option 'memoryLimitMiB' must be one of 512, 1024, 2048 for cpu 256, got 4096/);
  });

  it('fewer than 2 tasks are asked for', () => {
    expect(() => build({ desiredCount: 1 })).toThrow(/option 'desiredCount' must be an integer from 2 to 10, got 1/);
  });

  it('point-in-time recovery reaches back out of range', () => {
    expect(() => build({ pointInTimeRecoveryDays: 0 })).toThrow(/option 'pointInTimeRecoveryDays' must be an integer from 1 to 35, got 0/);
    expect(() => build({ pointInTimeRecoveryDays: 36 })).toThrow(/got 36/);
  });

  it('NLB access logs are asked for in an environment-agnostic stack', () => {
    expect(() => build({ accessLogsBucket: s3.Bucket.fromBucketName(helper(), 'B', 'logs') })).toThrow(/option 'accessLogsBucket' needs a stack with an explicit region/);
  });
});

describe('KanmonNetwork throws when', () => {
  const scope = () => new Stack(newApp(), 'N');

  it('natGateways is out of range or fractional', () => {
    expect(() => new KanmonNetwork(scope(), 'Net', { natGateways: 3 })).toThrow(/option 'natGateways' must be an integer from 0 to 2, got 3/);
    expect(() => new KanmonNetwork(scope(), 'Net', { natGateways: -1 })).toThrow(/got -1/);
    expect(() => new KanmonNetwork(scope(), 'Net', { natGateways: 1.5 })).toThrow(/got 1.5/);
  });

  it('the CIDR is not an IPv4 CIDR of /24 or larger', () => {
    expect(() => new KanmonNetwork(scope(), 'Net', { cidr: '10.0.0.0' })).toThrow(/option 'cidr' must be an IPv4 CIDR of \/24 or larger like 10.0.0.0\/16, got "10.0.0.0"/);
    expect(() => new KanmonNetwork(scope(), 'Net', { cidr: '10.0.0.0/28' })).toThrow(/got "10.0.0.0\/28"/);
  });

  it('new-VPC options come with an existing VPC', () => {
    const s = scope();
    const vpc = ec2.Vpc.fromVpcAttributes(s, 'Existing', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['a', 'b'], privateSubnetIds: ['subnet-0a000000000000001', 'subnet-0a000000000000002'] });
    expect(() => new KanmonNetwork(s, 'Net', { vpc, natGateways: 1 })).toThrow(/option 'natGateways' applies only to a new VPC; remove it or the 'vpc' option, got 1 with an existing VPC/);
    expect(() => new KanmonNetwork(s, 'Net2', { vpc, cidr: '10.1.0.0/16' })).toThrow(/option 'cidr' applies only to a new VPC/);
  });

  it('the existing VPC spans one availability zone', () => {
    const s = scope();
    const vpc = ec2.Vpc.fromVpcAttributes(s, 'Existing', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['ap-northeast-1a'], privateSubnetIds: ['subnet-0a000000000000001'] });
    expect(() => new KanmonNetwork(s, 'Net', { vpc })).toThrow(/option 'vpc' must span at least 2 availability zones, got \["ap-northeast-1a"\]/);
  });

  it('the existing VPC has no private subnets with egress', () => {
    const s = scope();
    const vpc = ec2.Vpc.fromVpcAttributes(s, 'Existing', {
      vpcId: 'vpc-0123456789abcdef0',
      availabilityZones: ['ap-northeast-1a', 'ap-northeast-1c'],
      isolatedSubnetIds: ['subnet-0a000000000000001', 'subnet-0a000000000000002'],
    });
    expect(() => new KanmonNetwork(s, 'Net', { vpc })).toThrow(/option 'vpc' must have private subnets with egress for the tasks, got none in vpc-0123456789abcdef0/);
  });
});

describe('KanmonStore and KanmonAlerts throw when', () => {
  it('the key deletion window is out of range', () => {
    expect(() => new KanmonStore(new Stack(newApp(), 'S'), 'Store', { keyPendingWindowDays: 3 })).toThrow(/option 'keyPendingWindowDays' must be an integer from 7 to 30, got 3/);
  });

  it('no e-mail address is given', () => {
    expect(() => new KanmonAlerts(new Stack(newApp(), 'A'), 'Alerts', { emails: [] })).toThrow(/option 'emails' must list at least one e-mail address, got \[\]/);
  });

  it('an e-mail address is invalid or a token', () => {
    expect(() => new KanmonAlerts(new Stack(newApp(), 'A'), 'Alerts', { emails: ['@example.com'] })).toThrow(/option 'emails\[0\]' must be an e-mail address, got "@example.com"/);
    expect(() => new KanmonAlerts(new Stack(newApp(), 'A'), 'Alerts', { emails: [Lazy.string({ produce: () => 'a@b.c' })] })).toThrow(/option 'emails\[0\]' must be a literal string known at synth time/);
  });
});

describe('KanmonStack throws when', () => {
  it('a resource is given both as an object and by id', () => {
    const zone = route53.HostedZone.fromHostedZoneAttributes(helper(), 'Z', { hostedZoneId: 'Z1', zoneName: 'example.com' });
    expect(() => build({ hostedZone: zone, hostedZoneId: 'Z2' })).toThrow(/options 'hostedZone' and 'hostedZoneId' name the same thing; pass one of them, got both \("Z2"\)/);
    const secret = secretsmanager.Secret.fromSecretCompleteArn(helper(), 'S', SECRET_ARN);
    expect(() => build({ certificates: 'imported', certificateSecret: secret, certificateSecretArn: SECRET_ARN })).toThrow(/options 'certificateSecret' and 'certificateSecretArn'/);
  });

  it('a zone name comes without a zone id', () => {
    expect(() => build({ hostedZoneName: 'example.com' })).toThrow(/option 'hostedZoneName' needs 'hostedZoneId', got only the name "example.com"/);
  });

  it('a VPC id is given to an environment-agnostic stack', () => {
    expect(() => build({ vpcId: 'vpc-0123456789abcdef0' })).toThrow(/option 'vpcId' needs the stack's account and region \(env\).*got "vpc-0123456789abcdef0"/);
  });
});

describe('accepted edge cases', () => {
  it('a hosted zone imported by id alone (its name is unknown until deploy)', () => {
    expect(() => build({ hostedZoneId: 'Z0123456789ABC' })).not.toThrow();
  });

  it('a zone that is the domain itself', () => {
    expect(() => build({ domain: 'example.com', hostedZoneId: 'Z1', hostedZoneName: 'example.com.' })).not.toThrow();
  });

  it('a secret given by partial ARN', () => {
    const stack = build({ certificates: 'imported', certificateSecretArn: 'arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:kanmon-cert', natGateways: 1, healthCheckGracePeriod: Duration.minutes(2) });
    expect(stack.kanmon.runtimeConfig.tls).toEqual({ source: 'imported', secretArn: 'arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:kanmon-cert' });
  });
});
