/**
 * The default deployment (`certificates: 'letsencrypt'`, new VPC): one synthesized stack,
 * checked requirement by requirement against issue 3.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { AssetManifestArtifact } from 'aws-cdk-lib/cx-api';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LETS_ENCRYPT_DIRECTORY, validateConfig } from '../../runtime/config/schema.js';
import { TABLE_SCHEMA } from '../../runtime/store/dynamodb/schema.js';
import { ALARMS, CONFIG_ENVIRONMENT_VARIABLE, CONTAINER_PORTS, KANMON_METRICS } from '../../lib/index.js';
import { annotationsOf, containerDefinition, nagFindings, only, resources, runtimeConfigOf, synth, type Synthesized } from './support.js';

let s: Synthesized;
beforeAll(() => {
  s = synth({ adminEmails: ['ops@example.com', 'security@example.com'], tags: { CostCenter: 'it-security' } });
});
afterAll(() => s?.cleanup());

const ref = (logicalId: string) => ({ Ref: logicalId });
const idOf = (type: string) => only(s.template, type)[0];

describe('network', () => {
  it('creates a VPC across two availability zones with public and private subnets', () => {
    s.template.resourceCountIs('AWS::EC2::VPC', 1);
    const subnets = resources(s.template, 'AWS::EC2::Subnet');
    expect(subnets).toHaveLength(4);
    const publicSubnets = subnets.filter(([, r]) => r.Properties.MapPublicIpOnLaunch === true);
    expect(publicSubnets).toHaveLength(2);
    const azs = new Set(subnets.map(([, r]) => JSON.stringify(r.Properties.AvailabilityZone)));
    expect(azs.size).toBe(2);
  });

  it('has a managed NAT gateway per AZ by default', () => {
    s.template.resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  it('keeps the store and image layers off the NAT path with gateway endpoints', () => {
    const endpoints = resources(s.template, 'AWS::EC2::VPCEndpoint').map(([, r]) => JSON.stringify(r.Properties.ServiceName));
    expect(endpoints.some((n) => n.includes('.dynamodb'))).toBe(true);
    expect(endpoints.some((n) => n.includes('.s3'))).toBe(true);
    for (const [, r] of resources(s.template, 'AWS::EC2::VPCEndpoint')) expect(r.Properties.VpcEndpointType).toBe('Gateway');
  });

  it('records VPC flow logs to a log group with a retention period', () => {
    s.template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
  });

  it('runs the tasks in the private subnets, without public IPs', () => {
    const [, service] = only(s.template, 'AWS::ECS::Service');
    const config = service.Properties.NetworkConfiguration.AwsvpcConfiguration;
    expect(config.AssignPublicIp).toBe('DISABLED');
    const privateIds = resources(s.template, 'AWS::EC2::Subnet').filter(([, r]) => r.Properties.MapPublicIpOnLaunch === false).map(([id]) => ref(id));
    expect(config.Subnets).toEqual(privateIds);
    expect(config.Subnets).toHaveLength(2);
  });
});

describe('store', () => {
  it("creates the table with the runtime's key schema and every GSI", () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: TABLE_SCHEMA.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_SCHEMA.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: TABLE_SCHEMA.globalSecondaryIndexes.map((gsi) => ({
        IndexName: gsi.indexName,
        KeySchema: [
          { AttributeName: gsi.partitionKey, KeyType: 'HASH' },
          { AttributeName: gsi.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      })),
    });
    const attributes = only(s.template, 'AWS::DynamoDB::Table')[1].Properties.AttributeDefinitions as { AttributeName: string; AttributeType: string }[];
    const keys = [TABLE_SCHEMA.partitionKey, TABLE_SCHEMA.sortKey, ...TABLE_SCHEMA.globalSecondaryIndexes.flatMap((g) => [g.partitionKey, g.sortKey])];
    expect(attributes.map((a) => a.AttributeName).sort()).toEqual([...new Set(keys)].sort());
    expect(attributes.every((a) => a.AttributeType === 'S')).toBe(true);
  });

  it('is on-demand, with point-in-time recovery, deletion protection and the TTL attribute', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
      DeletionProtectionEnabled: true,
      TimeToLiveSpecification: { AttributeName: TABLE_SCHEMA.ttlAttribute, Enabled: true },
    });
  });

  it('is encrypted with a customer-managed key that rotates', () => {
    const keyId = resources(s.template, 'AWS::KMS::Key').find(([id]) => id.includes('Store'))![0];
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } },
    });
    s.template.hasResource('AWS::KMS::Key', { Properties: Match.objectLike({ EnableKeyRotation: true }), DeletionPolicy: 'Retain' });
  });

  it('retains the table when the stack is deleted', () => {
    s.template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('uses the same key for the runtime secrets (the config names it)', () => {
    const keyId = resources(s.template, 'AWS::KMS::Key').find(([id]) => id.includes('Store'))![0];
    expect(runtimeConfigOf(s.template).tokens).toContainEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    expect(runtimeConfigOf(s.template).config.secrets).toEqual({ provider: 'kms', keyId: `placeholder-${keyId}-Arn`, region: 'ap-northeast-1' });
  });
});

describe('service', () => {
  it('runs an ECS cluster with Container Insights', () => {
    s.template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
  });

  it('runs 2 Fargate tasks, spread and rebalanced over the AZs', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      PlatformVersion: 'LATEST',
      AvailabilityZoneRebalancing: 'ENABLED',
    });
  });

  it('deploys with a rolling-back circuit breaker, min healthy 100 % and max 200 %', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', {
      DeploymentConfiguration: { DeploymentCircuitBreaker: { Enable: true, Rollback: true }, MinimumHealthyPercent: 100, MaximumPercent: 200 },
    });
  });

  it('has ECS Exec off', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', { EnableExecuteCommand: false });
  });

  it('gives the first ACME certificate time before load balancer health counts', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', { HealthCheckGracePeriodSeconds: 300 });
  });

  it('runs the container image built from the Dockerfile asset', () => {
    const image = JSON.stringify(containerDefinition(s.template).Image);
    expect(image).toContain('container-assets');
    const manifest = s.app.synth().artifacts.find((a): a is AssetManifestArtifact => a instanceof AssetManifestArtifact)!;
    const images = Object.values(JSON.parse(readFileSync(manifest.file, 'utf8')).dockerImages) as { source: Record<string, string> }[];
    expect(images.map((i) => i.source)).toEqual([{ directory: expect.stringMatching(/^asset\./), dockerFile: 'Dockerfile', platform: 'linux/amd64' }]);
  });

  it('stages the Docker build context at synth without node_modules, cdk.out or tests', () => {
    const staged = readdirSync(s.outdir).filter((d) => d.startsWith('asset.') && existsSync(join(s.outdir, d, 'Dockerfile')));
    expect(staged).toHaveLength(1);
    const context = join(s.outdir, staged[0]!);
    expect(existsSync(join(context, 'package-lock.json'))).toBe(true);
    expect(existsSync(join(context, 'runtime', 'config', 'schema.ts'))).toBe(true);
    for (const absent of ['node_modules', 'cdk.out', 'test', '.git', 'dist']) expect(existsSync(join(context, absent)), absent).toBe(false);
  });

  it('has a read-only root filesystem with a scratch volume at /tmp', () => {
    const def = containerDefinition(s.template);
    expect(def.ReadonlyRootFilesystem).toBe(true);
    expect(def.MountPoints).toEqual([{ SourceVolume: 'scratch', ContainerPath: '/tmp', ReadOnly: false }]);
    s.template.hasResourceProperties('AWS::ECS::TaskDefinition', { Volumes: [{ Name: 'scratch' }] });
    expect(runtimeConfigOf(s.template).config.dataDir).toBe('/tmp/kanmon');
  });

  it('runs as a non-root user with every capability dropped and an init process', () => {
    const def = containerDefinition(s.template);
    expect(def.User).toBe('1000:1000');
    expect(def.LinuxParameters).toEqual({ Capabilities: { Drop: ['ALL'] }, InitProcessEnabled: true });
  });

  it('has a container health check against /healthz on the health port', () => {
    expect(containerDefinition(s.template).HealthCheck).toMatchObject({
      Command: ['CMD', 'node', '/app/dist/healthcheck.mjs'],
      Interval: 15,
      Retries: 3,
      StartPeriod: 30,
      Timeout: 5,
    });
  });

  it('gives the runtime its shutdown grace before SIGKILL', () => {
    expect(containerDefinition(s.template).StopTimeout).toBe(30);
  });

  it('exposes the TLS, HTTP and health ports', () => {
    expect(containerDefinition(s.template).PortMappings.map((p: { ContainerPort: number }) => p.ContainerPort)).toEqual([
      CONTAINER_PORTS.tls,
      CONTAINER_PORTS.http,
      CONTAINER_PORTS.health,
    ]);
  });

  it('logs to CloudWatch Logs with a retention period, non-blocking', () => {
    const def = containerDefinition(s.template);
    expect(def.LogConfiguration.LogDriver).toBe('awslogs');
    expect(def.LogConfiguration.Options).toMatchObject({ mode: 'non-blocking', 'max-buffer-size': `${25 * 1024 * 1024}b` });
    const logGroupId = def.LogConfiguration.Options['awslogs-group'].Ref as string;
    s.template.hasResource('AWS::Logs::LogGroup', {});
    expect(s.template.toJSON().Resources[logGroupId].Properties.RetentionInDays).toBe(90);
  });

  it('hands the runtime its configuration in exactly one environment variable', () => {
    const env = containerDefinition(s.template).Environment as { Name: string }[];
    expect(env.map((e) => e.Name)).toEqual([CONFIG_ENVIRONMENT_VARIABLE]);
    expect(containerDefinition(s.template).Secrets).toBeUndefined();
  });

  it('gives the task role only the table, the store key, the topic and its key', () => {
    const taskRoleId = only(s.template, 'AWS::ECS::TaskDefinition')[1].Properties.TaskRoleArn['Fn::GetAtt'][0] as string;
    const policies = resources(s.template, 'AWS::IAM::Policy').filter(([, p]) => p.Properties.Roles.some((r: { Ref: string }) => r.Ref === taskRoleId));
    expect(policies).toHaveLength(1);
    const statements = policies[0]![1].Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[];
    const tableId = idOf('AWS::DynamoDB::Table');
    const topicId = idOf('AWS::SNS::Topic');
    const [storeKey, alertKey] = ['Store', 'Alerts'].map((n) => resources(s.template, 'AWS::KMS::Key').find(([id]) => id.includes(n))![0]);
    expect(statements).toEqual([
      {
        Action: expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Query']),
        Effect: 'Allow',
        Resource: [{ 'Fn::GetAtt': [tableId, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId, 'Arn'] }, '/index/*']] }],
      },
      { Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [storeKey, 'Arn'] } },
      { Action: 'sns:Publish', Effect: 'Allow', Resource: ref(topicId!) },
      { Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [alertKey, 'Arn'] } },
    ]);
    expect(s.template.toJSON().Resources[taskRoleId].Properties.ManagedPolicyArns).toBeUndefined();
  });
});

describe('load balancer', () => {
  it('is an internet-facing NLB in the public subnets with cross-zone load balancing', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internet-facing',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'load_balancing.cross_zone.enabled', Value: 'true' }]),
      SecurityGroups: Match.anyValue(),
    });
  });

  it('passes 443 through as TCP to the container TLS port, and 80 as TCP to the HTTP port', () => {
    const tgs = Object.fromEntries(resources(s.template, 'AWS::ElasticLoadBalancingV2::TargetGroup').map(([id, r]) => [id, r.Properties.Port as number]));
    const listeners = resources(s.template, 'AWS::ElasticLoadBalancingV2::Listener').map(([, r]) => ({
      port: r.Properties.Port,
      protocol: r.Properties.Protocol,
      targetPort: tgs[r.Properties.DefaultActions[0].TargetGroupArn.Ref],
    }));
    expect(listeners).toEqual(
      expect.arrayContaining([
        { port: 443, protocol: 'TCP', targetPort: CONTAINER_PORTS.tls },
        { port: 80, protocol: 'TCP', targetPort: CONTAINER_PORTS.http },
      ]),
    );
    expect(listeners).toHaveLength(2);
  });

  it('turns PROXY protocol v2 on, with a short deregistration delay, for both target groups', () => {
    for (const [, tg] of resources(s.template, 'AWS::ElasticLoadBalancingV2::TargetGroup')) {
      expect(tg.Properties).toMatchObject({ Protocol: 'TCP', TargetType: 'ip' });
      expect(tg.Properties.TargetGroupAttributes).toEqual(
        expect.arrayContaining([
          { Key: 'proxy_protocol_v2.enabled', Value: 'true' },
          { Key: 'deregistration_delay.timeout_seconds', Value: '30' },
          { Key: 'preserve_client_ip.enabled', Value: 'false' },
        ]),
      );
    }
  });

  it('health-checks over HTTP on the internal health port, never through a listener', () => {
    for (const [, tg] of resources(s.template, 'AWS::ElasticLoadBalancingV2::TargetGroup')) {
      expect(tg.Properties).toMatchObject({ HealthCheckProtocol: 'HTTP', HealthCheckPort: String(CONTAINER_PORTS.health), HealthCheckPath: '/readyz' });
    }
    const listenerPorts = resources(s.template, 'AWS::ElasticLoadBalancingV2::Listener').map(([, r]) => r.Properties.Port);
    expect(listenerPorts).not.toContain(CONTAINER_PORTS.health);
  });

  it('registers the service in both target groups', () => {
    s.template.hasResourceProperties('AWS::ECS::Service', {
      LoadBalancers: [
        { ContainerName: 'kanmon', ContainerPort: CONTAINER_PORTS.tls, TargetGroupArn: Match.anyValue() },
        { ContainerName: 'kanmon', ContainerPort: CONTAINER_PORTS.http, TargetGroupArn: Match.anyValue() },
      ],
    });
  });

  it('lets only 443 and 80 in from the internet, and only NLB traffic into the tasks', () => {
    const nlbSgId = only(s.template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[1].Properties.SecurityGroups[0]['Fn::GetAtt'][0] as string;
    const groups = Object.fromEntries(resources(s.template, 'AWS::EC2::SecurityGroup'));
    const nlbIngress = groups[nlbSgId]!.Properties.SecurityGroupIngress as { CidrIp: string; FromPort: number; ToPort: number }[];
    expect(nlbIngress.map((r) => [r.CidrIp, r.FromPort, r.ToPort])).toEqual([
      ['0.0.0.0/0', 443, 443],
      ['0.0.0.0/0', 80, 80],
    ]);
    expect(groups[nlbSgId]!.Properties.SecurityGroupEgress).toBeUndefined();

    const serviceSgId = only(s.template, 'AWS::ECS::Service')[1].Properties.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[0]['Fn::GetAtt'][0] as string;
    expect(groups[serviceSgId]!.Properties.SecurityGroupIngress).toBeUndefined();
    const taskIngress = resources(s.template, 'AWS::EC2::SecurityGroupIngress')
      .map(([, r]) => r.Properties)
      .filter((p) => p.GroupId['Fn::GetAtt'][0] === serviceSgId);
    expect(taskIngress.map((p) => [p.SourceSecurityGroupId['Fn::GetAtt'][0], p.FromPort, p.ToPort])).toEqual([
      [nlbSgId, CONTAINER_PORTS.tls, CONTAINER_PORTS.tls],
      [nlbSgId, CONTAINER_PORTS.http, CONTAINER_PORTS.http],
      [nlbSgId, CONTAINER_PORTS.health, CONTAINER_PORTS.health],
    ]);
    const nlbEgress = resources(s.template, 'AWS::EC2::SecurityGroupEgress')
      .map(([, r]) => r.Properties)
      .filter((p) => p.GroupId['Fn::GetAtt'][0] === nlbSgId);
    expect(nlbEgress.map((p) => [p.DestinationSecurityGroupId['Fn::GetAtt'][0], p.FromPort])).toEqual([
      [serviceSgId, CONTAINER_PORTS.tls],
      [serviceSgId, CONTAINER_PORTS.http],
      [serviceSgId, CONTAINER_PORTS.health],
    ]);
  });

  it('creates no DNS record without a hosted zone, and outputs where to point the domain', () => {
    s.template.resourceCountIs('AWS::Route53::RecordSet', 0);
    s.template.hasOutput('*', { Value: { 'Fn::GetAtt': [idOf('AWS::ElasticLoadBalancingV2::LoadBalancer'), 'DNSName'] } });
  });
});

describe('certificates: letsencrypt (default)', () => {
  it('wires ACME: domain, contact e-mail, Let\'s Encrypt production directory', () => {
    expect(runtimeConfigOf(s.template).config.tls).toEqual({
      source: 'acme',
      domains: ['gate.example.com'],
      email: 'ops@example.com',
      directoryUrl: LETS_ENCRYPT_DIRECTORY,
    });
  });

  it('keeps ACME state in the store table (the DynamoDB store)', () => {
    expect(runtimeConfigOf(s.template).config.store).toEqual({ kind: 'dynamodb', table: `placeholder-${idOf('AWS::DynamoDB::Table')}`, region: 'ap-northeast-1' });
  });

  it('creates no ACM certificate', () => {
    s.template.resourceCountIs('AWS::CertificateManager::Certificate', 0);
  });
});

describe('runtime configuration contract', () => {
  it('is accepted by the runtime config parser with deploy-time values as placeholders', () => {
    const { config } = runtimeConfigOf(s.template);
    const result = validateConfig(config);
    expect(result.ok ? [] : result.errors).toEqual([]);
  });

  it('replaces only table, key, topic and region with deploy-time values', () => {
    const { tokens } = runtimeConfigOf(s.template);
    const kinds = new Set(tokens.map((t) => JSON.stringify(t)));
    expect([...kinds].sort()).toEqual(
      [
        ref(idOf('AWS::DynamoDB::Table')!),
        ref(idOf('AWS::SNS::Topic')!),
        ref('AWS::Region'),
        { 'Fn::GetAtt': [resources(s.template, 'AWS::KMS::Key').find(([id]) => id.includes('Store'))![0], 'Arn'] },
      ]
        .map((t) => JSON.stringify(t))
        .sort(),
    );
  });

  it('matches the listeners: ports, public origin, PROXY v2 from the VPC only, EMF and SNS on', () => {
    const result = validateConfig(runtimeConfigOf(s.template).config);
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const c = result.config;
    expect(c.server).toMatchObject({
      port: CONTAINER_PORTS.tls,
      httpPort: CONTAINER_PORTS.http,
      healthPort: CONTAINER_PORTS.health,
      publicOrigin: 'https://gate.example.com',
      proxyProtocol: { enabled: true, allowedNetworks: ['10.0.0.0/16'] },
      // The default task is half a vCPU: one process.
      workers: 1,
    });
    expect(c.webauthn.rpId).toBe('gate.example.com');
    expect(c.metrics).toEqual({ emf: true, namespace: 'Kanmon' });
    expect(c.notifications).toEqual({ kind: 'sns', topicArn: `placeholder-${idOf('AWS::SNS::Topic')}`, region: 'ap-northeast-1', certificateExpiryDays: [30, 7, 1], adminRecipients: [] });
    expect(c.routes.map((r) => r.id)).toEqual(['groupware']);
  });
});

describe('monitoring', () => {
  it('has a KMS-encrypted SNS topic that refuses publishing without TLS', () => {
    const alertKey = resources(s.template, 'AWS::KMS::Key').find(([id]) => id.includes('Alerts'))![0];
    s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [alertKey, 'Arn'] } });
    s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('lets CloudWatch alarms use the topic key', () => {
    s.template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] }),
        ]),
      },
    });
  });

  it('subscribes every admin e-mail', () => {
    const subscriptions = resources(s.template, 'AWS::SNS::Subscription').map(([, r]) => [r.Properties.Protocol, r.Properties.Endpoint]);
    expect(subscriptions).toEqual([
      ['email', 'ops@example.com'],
      ['email', 'security@example.com'],
    ]);
  });

  it('has one alarm per signal, each notifying the topic on alarm and on recovery', () => {
    const topic = ref(idOf('AWS::SNS::Topic')!);
    const alarms = resources(s.template, 'AWS::CloudWatch::Alarm');
    expect(alarms.map(([, a]) => a.Properties.AlarmName).sort()).toEqual(Object.values(ALARMS).map((n) => `Kanmon-${n}`).sort());
    for (const [, a] of alarms) {
      expect(a.Properties.AlarmActions).toEqual([topic]);
      expect(a.Properties.OKActions).toEqual([topic]);
      expect(a.Properties.AlarmDescription).toEqual(expect.any(String));
    }
  });

  const alarm = (suffix: string) => resources(s.template, 'AWS::CloudWatch::Alarm').find(([, a]) => a.Properties.AlarmName === `Kanmon-${suffix}`)![1].Properties;

  it('alarms when fewer than 2 hosts are healthy, or any is unhealthy', () => {
    expect(alarm(ALARMS.healthyHosts)).toMatchObject({ Namespace: 'AWS/NetworkELB', MetricName: 'HealthyHostCount', ComparisonOperator: 'LessThanThreshold', Threshold: 2, Statistic: 'Minimum' });
    expect(alarm(ALARMS.unhealthyHosts)).toMatchObject({ Namespace: 'AWS/NetworkELB', MetricName: 'UnHealthyHostCount', ComparisonOperator: 'GreaterThanThreshold', Threshold: 0 });
  });

  it('alarms when the running task count is below desired', () => {
    const a = alarm(ALARMS.runningTasks);
    expect(a.Metrics[0]).toMatchObject({ Expression: 'desired - running', ReturnData: true });
    const names = a.Metrics.slice(1).map((m: any) => [m.MetricStat.Metric.Namespace, m.MetricStat.Metric.MetricName]);
    expect(names).toEqual([
      ['ECS/ContainerInsights', 'DesiredTaskCount'],
      ['ECS/ContainerInsights', 'RunningTaskCount'],
    ]);
    expect(a).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', Threshold: 0.5 });
  });

  it('alarms on proxied 5xx and on upstream errors over every route, from the runtime metrics', () => {
    expect(alarm(ALARMS.proxied5xx).Metrics[0].Expression).toBe(`SELECT SUM(Requests) FROM SCHEMA("Kanmon", Route, StatusClass) WHERE StatusClass = '5xx'`);
    expect(alarm(ALARMS.proxied5xx)).toMatchObject({ Threshold: 10, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
    expect(alarm(ALARMS.upstreamErrors).Metrics[0].Expression).toBe(`SELECT SUM(UpstreamErrors) FROM SCHEMA("Kanmon", Route)`);
    expect(alarm(ALARMS.upstreamErrors).Metrics[0].Period).toBe(300);
  });

  it('alarms on a login failure spike over every method', () => {
    expect(alarm(ALARMS.loginFailures).Metrics[0].Expression).toBe(`SELECT SUM(LoginFailure) FROM SCHEMA("Kanmon", Method)`);
    expect(alarm(ALARMS.loginFailures).Threshold).toBe(20);
  });

  it('alarms when the server certificate expires in under 14 days', () => {
    expect(alarm(ALARMS.certificateExpiry)).toMatchObject({
      Namespace: 'Kanmon',
      MetricName: 'ServerCertificateDaysToExpiry',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 14,
      Statistic: 'Minimum',
    });
  });

  it('alarms on DynamoDB throttles and system errors of the table', () => {
    const table = ref(idOf('AWS::DynamoDB::Table')!);
    const throttles = alarm(ALARMS.dynamoDbThrottles).Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric);
    expect(throttles.map((m: any) => m.MetricName)).toEqual(['ReadThrottleEvents', 'WriteThrottleEvents']);
    for (const m of throttles) expect(m.Dimensions).toEqual([{ Name: 'TableName', Value: table }]);
    const errors = alarm(ALARMS.dynamoDbErrors).Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric);
    expect(errors.length).toBeLessThanOrEqual(10);
    for (const m of errors) expect(m).toMatchObject({ Namespace: 'AWS/DynamoDB', MetricName: 'SystemErrors' });
  });

  it('alarms on container restarts, recording why each task stopped', () => {
    const ruleId = idOf('AWS::Events::Rule')!;
    expect(alarm(ALARMS.containerRestarts)).toMatchObject({
      Namespace: 'AWS/Events',
      MetricName: 'TriggeredRules',
      Dimensions: [{ Name: 'RuleName', Value: ref(ruleId) }],
      Threshold: 0,
    });
    s.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ecs'],
        'detail-type': ['ECS Task State Change'],
        detail: {
          lastStatus: ['STOPPED'],
          $or: [{ stopCode: ['EssentialContainerExited', 'TaskFailedToStart'] }, { stoppedReason: [{ prefix: 'Task failed' }] }],
        },
      },
      Targets: [Match.objectLike({ Arn: Match.objectLike({ 'Fn::Join': Match.anyValue() }) })],
    });
    s.template.hasResourceProperties('AWS::Logs::ResourcePolicy', { PolicyDocument: Match.anyValue() });
  });

  it('has a dashboard with the same signals', () => {
    const body = JSON.stringify(only(s.template, 'AWS::CloudWatch::Dashboard')[1].Properties.DashboardBody);
    for (const signal of ['HealthyHostCount', 'UnHealthyHostCount', 'RunningTaskCount', 'DesiredTaskCount', 'TriggeredRules', 'ReadThrottleEvents', 'SystemErrors']) {
      expect(body, signal).toContain(signal);
    }
    for (const def of Object.values(KANMON_METRICS)) expect(body, def.name).toContain(def.name);
    expect(body).toContain('alarms');
  });

  it('publishes the metric contract the runtime emits', () => {
    expect(Object.fromEntries(Object.values(KANMON_METRICS).map((m) => [m.name, m.dimensions]))).toMatchObject({
      Requests: ['Route', 'StatusClass'],
      Upstream5xx: ['Route'],
      UpstreamErrors: ['Route'],
      UpstreamLatency: ['Route'],
      LoginSuccess: ['Method'],
      LoginFailure: ['Method'],
      ActiveSessions: [],
      ServerCertificateDaysToExpiry: [],
    });
  });
});

describe('patching', () => {
  it('forces a new deployment every Sunday 03:00 UTC', () => {
    const serviceId = idOf('AWS::ECS::Service')!;
    const [, schedule] = only(s.template, 'AWS::Scheduler::Schedule');
    expect(schedule.Properties).toMatchObject({ ScheduleExpression: 'cron(0 3 ? * SUN *)', ScheduleExpressionTimezone: 'Etc/UTC', State: 'ENABLED' });
    expect(JSON.stringify(schedule.Properties.Target.Arn)).toContain(':scheduler:::aws-sdk:ecs:updateService');
    const input = schedule.Properties.Target.Input['Fn::Join'][1] as unknown[];
    expect(input).toContainEqual(ref(serviceId));
    expect(input.join('')).toContain('"ForceNewDeployment":true');
  });

  it('lets the schedule call ecs:UpdateService on this service only', () => {
    const roleId = only(s.template, 'AWS::Scheduler::Schedule')[1].Properties.Target.RoleArn['Fn::GetAtt'][0];
    s.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [ref(roleId)],
      PolicyDocument: { Statement: [{ Action: 'ecs:UpdateService', Effect: 'Allow', Resource: ref(idOf('AWS::ECS::Service')!) }] },
    });
  });
});

describe('outputs', () => {
  it('names the portal, the NLB, the table, the topic, the dashboard and the log groups', () => {
    const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    const byPrefix = (p: string) => Object.entries(outputs).find(([k]) => k.startsWith(`Kanmon${p}`))?.[1].Value;
    expect(byPrefix('Url')).toBe('https://gate.example.com/.kanmon/');
    expect(byPrefix('TableName')).toEqual(ref(idOf('AWS::DynamoDB::Table')!));
    expect(byPrefix('AlertTopicArn')).toEqual(ref(idOf('AWS::SNS::Topic')!));
    expect(byPrefix('DashboardName')).toEqual(ref(idOf('AWS::CloudWatch::Dashboard')!));
    for (const name of ['LoadBalancerDnsName', 'ClusterName', 'ServiceName', 'ContainerLogGroup', 'TaskStopLogGroup']) expect(byPrefix(name), name).toBeDefined();
  });
});

describe('tags, cdk-nag and annotations', () => {
  it('tags every taggable resource with Application and the caller\'s tags', () => {
    for (const type of ['AWS::DynamoDB::Table', 'AWS::ECS::Service', 'AWS::ElasticLoadBalancingV2::LoadBalancer', 'AWS::KMS::Key', 'AWS::SNS::Topic', 'AWS::EC2::VPC', 'AWS::CloudWatch::Alarm']) {
      for (const [id, r] of resources(s.template, type)) {
        expect(r.Properties.Tags, `${type} ${id}`).toEqual(expect.arrayContaining([{ Key: 'Application', Value: 'Kanmon' }, { Key: 'CostCenter', Value: 'it-security' }]));
      }
    }
    expect(s.stack.tags.tagValues()).toMatchObject({ Application: 'Kanmon', CostCenter: 'it-security' });
  });

  it('passes the cdk-nag AwsSolutions pack with no unacknowledged finding', () => {
    expect(nagFindings(s.app, s.stack)).toEqual([]);
  });

  it('synthesizes without warnings or errors', () => {
    expect(annotationsOf(s.stack)).toEqual({ errors: [], warnings: [] });
  });
});
