/**
 * The other deployment shapes: ACM at the NLB, an imported certificate in a VPC without NAT,
 * an existing VPC, and a tuned deployment. One synthesized stack per shape.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { AssetManifestArtifact } from 'aws-cdk-lib/cx-api';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LETS_ENCRYPT_STAGING_DIRECTORY, validateConfig } from '../../runtime/config/schema.js';
import { ALARMS, CONTAINER_PORTS } from '../../lib/index.js';
import { annotationsOf, containerDefinition, nagFindings, only, resources, ROUTES, runtimeConfigOf, synth, type Synthesized } from './support.js';

const SECRET_ARN = 'arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:kanmon/server-certificate-AbCdEf';

function expectContract(s: Synthesized): Record<string, any> {
  const result = validateConfig(runtimeConfigOf(s.template).config);
  expect(result.ok ? [] : result.errors).toEqual([]);
  return runtimeConfigOf(s.template).config;
}

const alarmNamed = (s: Synthesized, suffix: string) =>
  resources(s.template, 'AWS::CloudWatch::Alarm').find(([, a]) => a.Properties.AlarmName.endsWith(`-${suffix}`))![1].Properties;

describe('certificates: acm, with a hosted zone and NLB access logs', () => {
  let s: Synthesized;
  beforeAll(() => {
    const helper = new Stack(new App(), 'Helper');
    s = synth({
      certificates: 'acm',
      hostedZoneId: 'Z0123456789ABC',
      hostedZoneName: 'example.com',
      accessLogsBucket: s3.Bucket.fromBucketName(helper, 'Logs', 'kanmon-nlb-logs'),
    }, { env: { account: '111111111111', region: 'ap-northeast-1' } });
  });
  afterAll(() => s?.cleanup());

  it('terminates TLS on 443 at the NLB with a DNS-validated ACM certificate', () => {
    const certId = only(s.template, 'AWS::CertificateManager::Certificate')[0];
    s.template.hasResourceProperties('AWS::CertificateManager::Certificate', {
      DomainName: 'gate.example.com',
      ValidationMethod: 'DNS',
      DomainValidationOptions: [{ DomainName: 'gate.example.com', HostedZoneId: 'Z0123456789ABC' }],
    });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'TLS', Certificates: [{ CertificateArn: { Ref: certId } }] });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'TCP' });
  });

  it('forwards plain TCP with PROXY v2 to the container port', () => {
    const tg = resources(s.template, 'AWS::ElasticLoadBalancingV2::TargetGroup').find(([, r]) => r.Properties.Port === CONTAINER_PORTS.tls)![1];
    expect(tg.Properties.Protocol).toBe('TCP');
    expect(tg.Properties.TargetGroupAttributes).toContainEqual({ Key: 'proxy_protocol_v2.enabled', Value: 'true' });
  });

  it('tells the runtime TLS is offloaded', () => {
    expect(expectContract(s).tls).toEqual({ source: 'offloaded' });
  });

  it('creates an alias record for the domain', () => {
    const nlbId = only(s.template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0];
    s.template.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'gate.example.com.',
      Type: 'A',
      HostedZoneId: 'Z0123456789ABC',
      AliasTarget: { DNSName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([{ 'Fn::GetAtt': [nlbId, 'DNSName'] }])]) }) },
    });
  });

  it('watches certificate expiry through ACM', () => {
    const certId = only(s.template, 'AWS::CertificateManager::Certificate')[0];
    expect(alarmNamed(s, ALARMS.certificateExpiry)).toMatchObject({
      Namespace: 'AWS/CertificateManager',
      MetricName: 'DaysToExpiry',
      Dimensions: [{ Name: 'CertificateArn', Value: { Ref: certId } }],
      Threshold: 14,
    });
  });

  it('writes NLB access logs to the given bucket', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: 'kanmon-nlb-logs' },
      ]),
    });
  });

  it('uses the short health-check grace period (no ACME at start-up)', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', { HealthCheckGracePeriodSeconds: 60 });
  });

  it('is clean under cdk-nag and without warnings', () => {
    expect(nagFindings(s.app, s.stack)).toEqual([]);
    expect(annotationsOf(s.stack)).toEqual({ errors: [], warnings: [] });
  });
});

describe('certificates: acm with an existing certificate', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth({ certificates: 'acm', acmCertificateArn: 'arn:aws:acm:ap-northeast-1:111111111111:certificate/0f0f0f0f-1111-2222-3333-444444444444' });
  });
  afterAll(() => s?.cleanup());

  it('uses it on the TLS listener and creates none', () => {
    s.template.resourceCountIs('AWS::CertificateManager::Certificate', 0);
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'TLS',
      Certificates: [{ CertificateArn: 'arn:aws:acm:ap-northeast-1:111111111111:certificate/0f0f0f0f-1111-2222-3333-444444444444' }],
    });
  });
});

describe('certificates: imported, in a VPC without NAT', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth({ certificates: 'imported', certificateSecretArn: SECRET_ARN, natGateways: 0 });
  });
  afterAll(() => s?.cleanup());

  it('hands the secret ARN to the runtime and passes TLS through', () => {
    expect(expectContract(s).tls).toEqual({ source: 'imported', secretArn: SECRET_ARN });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'TCP' });
  });

  it('lets the task role read that secret', () => {
    s.template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'], Effect: 'Allow', Resource: SECRET_ARN }]) },
    });
  });

  it('has no NAT gateway and puts the tasks in isolated subnets', () => {
    s.template.resourceCountIs('AWS::EC2::NatGateway', 0);
    const routes = resources(s.template, 'AWS::EC2::Route').map(([, r]) => r.Properties);
    expect(routes.every((r) => r.GatewayId !== undefined)).toBe(true);
  });

  it('reaches DynamoDB, KMS, CloudWatch Logs, SNS, ECR and Secrets Manager through VPC endpoints', () => {
    const names = resources(s.template, 'AWS::EC2::VPCEndpoint').map(([, r]) => JSON.stringify(r.Properties.ServiceName));
    for (const service of ['.dynamodb', '.s3', '.kms', '.logs', '.sns', '.ecr.api', '.ecr.dkr', '.secretsmanager']) {
      expect(names.some((n) => n.includes(service)), service).toBe(true);
    }
    for (const [, r] of resources(s.template, 'AWS::EC2::VPCEndpoint').filter(([, r]) => r.Properties.VpcEndpointType === 'Interface')) {
      expect(r.Properties.PrivateDnsEnabled).toBe(true);
    }
  });

  it('opens the endpoints to HTTPS from the VPC only', () => {
    s.template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('interface endpoints'),
      SecurityGroupIngress: [{ CidrIp: '10.0.0.0/16', FromPort: 443, ToPort: 443, IpProtocol: 'tcp', Description: Match.anyValue() }],
    });
  });

  it('is clean under cdk-nag and without warnings', () => {
    expect(nagFindings(s.app, s.stack)).toEqual([]);
    expect(annotationsOf(s.stack)).toEqual({ errors: [], warnings: [] });
  });
});

describe('an existing VPC, patching off', () => {
  let s: Synthesized;
  beforeAll(() => {
    const helper = new Stack(new App(), 'Network');
    const vpc = ec2.Vpc.fromVpcAttributes(helper, 'Vpc', {
      vpcId: 'vpc-0123456789abcdef0',
      vpcCidrBlock: '172.31.0.0/16',
      availabilityZones: ['ap-northeast-1a', 'ap-northeast-1c'],
      publicSubnetIds: ['subnet-0a000000000000001', 'subnet-0a000000000000002'],
      privateSubnetIds: ['subnet-0b000000000000001', 'subnet-0b000000000000002'],
    });
    s = synth({ vpc, patching: { enabled: false } });
  });
  afterAll(() => s?.cleanup());

  it('creates no VPC and runs the tasks in its private subnets', () => {
    s.template.resourceCountIs('AWS::EC2::VPC', 0);
    s.template.resourceCountIs('AWS::EC2::FlowLog', 0);
    s.template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: { Subnets: ['subnet-0b000000000000001', 'subnet-0b000000000000002'], AssignPublicIp: 'DISABLED' } },
    });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Subnets: ['subnet-0a000000000000001', 'subnet-0a000000000000002'] });
  });

  it('accepts PROXY headers from that VPC only', () => {
    expect(expectContract(s).server.proxyProtocol).toEqual({ enabled: true, allowedNetworks: ['172.31.0.0/16'] });
  });

  it('has no patch schedule', () => {
    s.template.resourceCountIs('AWS::Scheduler::Schedule', 0);
  });

  it('is clean under cdk-nag', () => {
    expect(nagFindings(s.app, s.stack)).toEqual([]);
  });
});

describe('a tuned deployment', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth({
      stackName: 'KanmonProd',
      cpuArchitecture: ecs.CpuArchitecture.ARM64,
      cpu: 1024,
      memoryLimitMiB: 2048,
      desiredCount: 3,
      enableExecuteCommand: true,
      logRetention: logs.RetentionDays.ONE_YEAR,
      natGateways: 1,
      letsEncrypt: { email: 'pki@example.com', directoryUrl: LETS_ENCRYPT_STAGING_DIRECTORY },
      config: { routes: ROUTES, metrics: { namespace: 'Acme/Gateway' }, server: { shutdownGraceSeconds: 60 } as never, log: { level: 'debug' } },
      alarmThresholds: { proxied5xxPer5Minutes: 50, upstreamErrorsPer5Minutes: 25, loginFailuresPer5Minutes: 100, certificateExpiryDays: 21 },
      patching: { schedule: scheduler.ScheduleExpression.cron({ weekDay: 'SAT', hour: '17', minute: '30' }) },
      healthCheckGracePeriod: Duration.minutes(10),
    });
  });
  afterAll(() => s?.cleanup());

  it('runs on ARM64, with the image built for it', () => {
    s.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '1024',
      Memory: '2048',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    const manifest = s.app.synth().artifacts.find((a): a is AssetManifestArtifact => a instanceof AssetManifestArtifact)!;
    const images = Object.values(JSON.parse(readFileSync(manifest.file, 'utf8')).dockerImages) as { source: { platform: string } }[];
    expect(images.map((i) => i.source.platform)).toEqual(['linux/arm64']);
  });

  it('honours desired count, ECS Exec, log retention, grace period and one NAT', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: 3, EnableExecuteCommand: true, HealthCheckGracePeriodSeconds: 600 });
    s.template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
    s.template.resourceCountIs('AWS::EC2::NatGateway', 1);
  });

  it('stops the container after the runtime\'s own shutdown grace', () => {
    expect(containerDefinition(s.template).StopTimeout).toBe(70);
  });

  it('wires the ACME contact and directory', () => {
    expect(expectContract(s).tls).toMatchObject({ source: 'acme', email: 'pki@example.com', directoryUrl: LETS_ENCRYPT_STAGING_DIRECTORY });
  });

  it('alarms in the configured metrics namespace with the given thresholds', () => {
    expect(alarmNamed(s, ALARMS.proxied5xx).Metrics[0].Expression).toContain('SCHEMA("Acme/Gateway", Route, StatusClass)');
    expect(alarmNamed(s, ALARMS.proxied5xx).Threshold).toBe(50);
    expect(alarmNamed(s, ALARMS.upstreamErrors).Threshold).toBe(25);
    expect(alarmNamed(s, ALARMS.loginFailures).Threshold).toBe(100);
    expect(alarmNamed(s, ALARMS.certificateExpiry)).toMatchObject({ Namespace: 'Acme/Gateway', Threshold: 21 });
    expect(expectContract(s).metrics).toEqual({ namespace: 'Acme/Gateway', emf: true });
  });

  it('names alarms after the stack', () => {
    expect(resources(s.template, 'AWS::CloudWatch::Alarm').every(([, a]) => a.Properties.AlarmName.startsWith('KanmonProd-'))).toBe(true);
  });

  it('patches on the given schedule', () => {
    s.template.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'cron(30 17 ? * SAT *)' });
  });

  it('gives the ECS Exec agent writable paths next to the read-only root filesystem', () => {
    const def = containerDefinition(s.template);
    expect(def.ReadonlyRootFilesystem).toBe(true);
    expect(def.MountPoints.map((m: { ContainerPath: string }) => m.ContainerPath)).toEqual(['/tmp', '/managed-agents', '/var/lib/amazon/ssm', '/var/log/amazon/ssm']);
  });

  it('stays clean under cdk-nag with ECS Exec on', () => {
    expect(nagFindings(s.app, s.stack)).toEqual([]);
  });
});
