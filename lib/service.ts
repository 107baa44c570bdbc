import { Duration, Size, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { KanmonConfigInput } from '../runtime/config/schema.js';
import { acknowledgeNag, wildcardResourceFinding } from './nag.js';
import type { KanmonNetwork } from './network.js';
import { CONFIG_ENVIRONMENT_VARIABLE, CONTAINER_PORTS, SCRATCH_PATH } from './runtime-config.js';
import type { KanmonStore } from './store.js';
import { KanmonPropsError, requireInteger, show } from './validation.js';

/** Fargate CPU units and the memory sizes each allows. */
const FARGATE_SIZES: Record<number, readonly number[]> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: [2048, 3072, 4096, 5120, 6144, 7168, 8192],
  2048: Array.from({ length: 13 }, (_, i) => 4096 + i * 1024),
  4096: Array.from({ length: 23 }, (_, i) => 8192 + i * 1024),
};

export interface KanmonServiceProps {
  readonly network: KanmonNetwork;
  readonly store: KanmonStore;
  /** Topic the runtime publishes notifications to. */
  readonly topic: sns.ITopic;
  /** The runtime configuration; serialized into the container's one config variable. */
  readonly runtimeConfig: KanmonConfigInput;
  /** The Kanmon container image. */
  readonly image: ecs.ContainerImage;
  /**
   * Secret holding the server certificate and key, when certificates are imported.
   * @default - no secret is readable
   */
  readonly certificateSecret?: secretsmanager.ISecret;
  /**
   * Tasks to run; they are spread over the task subnets' availability zones.
   * @default 2
   */
  readonly desiredCount?: number;
  /**
   * CPU units per task.
   * @default 512
   */
  readonly cpu?: number;
  /**
   * Memory per task in MiB; must fit the CPU size.
   * @default 1024
   */
  readonly memoryLimitMiB?: number;
  /**
   * CPU architecture; the image is built for the same one.
   * @default ecs.CpuArchitecture.X86_64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;
  /**
   * Allow `aws ecs execute-command` into running tasks. Off, because a shell in the gateway
   * bypasses its audit log; turn on only while debugging.
   * @default false
   */
  readonly enableExecuteCommand?: boolean;
  /**
   * How long ECS ignores failing load balancer health checks of a new task. Long enough for the
   * first ACME certificate when the runtime obtains it at start-up.
   * @default Duration.minutes(1)
   */
  readonly healthCheckGracePeriod?: Duration;
  /**
   * Retention of the container log group (requests, EMF metrics, errors).
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The gateway itself: an ECS cluster and a Fargate service of (by default) two tasks in two
 * availability zones, rolled out with a circuit breaker that rolls back and never drops below
 * the desired count.
 */
export class KanmonService extends Construct {
  public readonly cluster: ecs.Cluster;
  public readonly service: ecs.FargateService;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly container: ecs.ContainerDefinition;
  public readonly logGroup: logs.LogGroup;
  public readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: KanmonServiceProps) {
    super(scope, id);
    requireInteger(this, 'desiredCount', props.desiredCount, 2, 10);
    const cpu = props.cpu ?? 512;
    const memoryLimitMiB = props.memoryLimitMiB ?? 1024;
    const memories = FARGATE_SIZES[cpu];
    if (!memories) {
      throw new KanmonPropsError(this, `option 'cpu' must be one of ${Object.keys(FARGATE_SIZES).join(', ')}, got ${show(cpu)}`);
    }
    if (!memories.includes(memoryLimitMiB)) {
      throw new KanmonPropsError(this, `option 'memoryLimitMiB' must be one of ${memories.join(', ')} for cpu ${cpu}, got ${show(memoryLimitMiB)}`);
    }
    const enableExecuteCommand = props.enableExecuteCommand ?? false;

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.network.vpc,
      // Supplies RunningTaskCount/DesiredTaskCount for the task-count alarm.
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu,
      memoryLimitMiB,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: props.cpuArchitecture ?? ecs.CpuArchitecture.X86_64,
      },
      // Fargate has no tmpfs; an empty task-scoped volume is the writable scratch space
      // next to the read-only root filesystem. It lives and dies with the task.
      volumes: [{ name: 'scratch' }],
    });

    const linuxParameters = new ecs.LinuxParameters(this, 'Linux', { initProcessEnabled: true });
    linuxParameters.dropCapabilities(ecs.Capability.ALL);

    this.container = this.taskDefinition.addContainer('kanmon', {
      containerName: 'kanmon',
      image: props.image,
      essential: true,
      readonlyRootFilesystem: true,
      // The image's `node` user; numeric so the task definition alone proves it is not root.
      user: '1000:1000',
      linuxParameters,
      environment: { [CONFIG_ENVIRONMENT_VARIABLE]: Stack.of(this).toJsonString(props.runtimeConfig) },
      portMappings: [
        { name: 'tls', containerPort: CONTAINER_PORTS.tls, protocol: ecs.Protocol.TCP },
        { name: 'http', containerPort: CONTAINER_PORTS.http, protocol: ecs.Protocol.TCP },
        { name: 'health', containerPort: CONTAINER_PORTS.health, protocol: ecs.Protocol.TCP },
      ],
      healthCheck: {
        command: ['CMD', 'node', '/app/dist/healthcheck.mjs'],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      // SIGTERM first; the runtime drains in-flight requests for server.shutdownGraceSeconds
      // and must have exited before this bound, when ECS sends SIGKILL.
      stopTimeout: Duration.seconds(stopTimeoutSeconds(props.runtimeConfig)),
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: 'kanmon',
        // A slow log pipeline must never stall the gateway.
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
    });
    this.container.addMountPoints({ sourceVolume: 'scratch', containerPath: SCRATCH_PATH, readOnly: false });
    if (enableExecuteCommand) {
      // The ECS Exec agent writes to these paths; with a read-only root filesystem they must be
      // volumes (containers-roadmap#1359). Only present while exec is switched on.
      for (const [name, containerPath] of [
        ['exec-agents', '/managed-agents'],
        ['exec-ssm-lib', '/var/lib/amazon/ssm'],
        ['exec-ssm-log', '/var/log/amazon/ssm'],
      ] as const) {
        this.taskDefinition.addVolume({ name });
        this.container.addMountPoints({ sourceVolume: name, containerPath, readOnly: false });
      }
    }

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.network.vpc,
      description: 'Kanmon tasks: ingress only from the load balancer; egress to AWS APIs, ACME and upstreams',
      allowAllOutbound: true,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: props.desiredCount ?? 2,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      enableExecuteCommand,
      vpcSubnets: props.network.taskSubnets,
      securityGroups: [this.securityGroup],
      assignPublicIp: false,
      platformVersion: ecs.FargatePlatformVersion.LATEST,
      healthCheckGracePeriod: props.healthCheckGracePeriod ?? Duration.minutes(1),
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      enableECSManagedTags: true,
    });
    // Keep the tasks balanced across AZs after an AZ recovers.
    (this.service.node.defaultChild as ecs.CfnService).availabilityZoneRebalancing = 'ENABLED';

    // The task role gets exactly what the runtime calls: the table, the key, the topic, and the
    // certificate secret when there is one. Metrics go out as EMF log lines, which need no grant.
    const taskRole = this.taskDefinition.taskRole;
    props.store.table.grantReadWriteData(taskRole);
    props.store.key.grantEncryptDecrypt(taskRole);
    props.topic.grantPublish(taskRole);
    props.certificateSecret?.grantRead(taskRole);

    acknowledgeNag(
      this.taskDefinition,
      'AwsSolutions-ECS2',
      'The one environment variable is the runtime configuration (table name, key ARN, topic ARN, ports, routes). It holds no secret: secrets are KMS-encrypted in the table.',
    );
    acknowledgeNag(
      taskRole,
      wildcardResourceFinding(this, `${props.store.table.tableArn}/index/*`),
      "Generated by table.grantReadWriteData: the runtime queries the table's own secondary indexes (<table ARN>/index/*), nothing else.",
    );
    for (const action of ['kms:GenerateDataKey*', 'kms:ReEncrypt*']) {
      acknowledgeNag(
        taskRole,
        `AwsSolutions-IAM5[Action::${action}]`,
        'Generated by key.grantEncryptDecrypt: an action family on the single store key, whose ARN is the only resource.',
      );
    }
    if (enableExecuteCommand) {
      acknowledgeNag(taskRole, 'AwsSolutions-IAM5[Resource::*]', 'ECS Exec was explicitly enabled: the ssmmessages channels have no resource-level permissions.');
    }
    acknowledgeNag(
      this.taskDefinition.obtainExecutionRole(),
      'AwsSolutions-IAM5[Resource::*]',
      'Generated for image pulls: ecr:GetAuthorizationToken has no resource-level permissions.',
    );
  }
}

/** Ten seconds more than the runtime's shutdown grace (default 20 s), within Fargate's 120 s limit. */
function stopTimeoutSeconds(config: KanmonConfigInput): number {
  const grace = (config.server as Record<string, unknown> | undefined)?.['shutdownGraceSeconds'];
  return Math.min(120, (typeof grace === 'number' ? grace : 20) + 10);
}
