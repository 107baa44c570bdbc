import { CfnOutput, Duration, Tags, Token } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { fileURLToPath } from 'node:url';
import { LETS_ENCRYPT_DIRECTORY, type KanmonConfigInput } from '../runtime/config/schema.js';
import { KanmonAlerts } from './alerts.js';
import { CERTIFICATE_SOURCES, type CertificateSource, type LetsEncryptOptions } from './certificates.js';
import { KanmonLoadBalancer } from './load-balancer.js';
import { KanmonMonitoring, type KanmonAlarmThresholds } from './monitoring.js';
import { KanmonNetwork } from './network.js';
import { KanmonPatching, type KanmonPatchingOptions } from './patching.js';
import { buildRuntimeConfig, checkRuntimeConfig, metricsNamespace, stackOwnedOptionsIn, withPlaceholders, workersForTaskCpu, type RuntimeTlsConfig } from './runtime-config.js';
import { KanmonService } from './service.js';
import { KanmonStore } from './store.js';
import { KanmonPropsError, isEmail, isHostName, requireLiteral, show } from './validation.js';

/** The repository root: the Docker build context of the default image. */
export const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Paths never sent to the image build (mirrors .dockerignore, which the asset also honours).
 * `cdk.out` matters most: staging the output directory into itself never ends.
 */
export const IMAGE_BUILD_EXCLUDES: readonly string[] = ['node_modules', 'cdk.out', 'dist', '.kanmon', '.git', 'test', 'test-results', '*.log'];

/** Upper bound for the serialized runtime config, leaving room in ECS's 64 KiB task definition limit. */
export const MAX_CONFIG_BYTES = 48 * 1024;

export interface KanmonProps {
  /** The host name users open, e.g. `gate.example.com`; the portal lives at `https://<domain>/.kanmon/`. */
  readonly domain: string;
  /** Administrators who receive alarms and notifications by e-mail (each confirms a subscription). */
  readonly adminEmails: readonly string[];
  /**
   * Public hosted zone for `domain`: gets an alias record to the NLB, and validates the ACM
   * certificate when `certificates` is `acm`.
   * @default - no DNS record; point `domain` at the `LoadBalancerDnsName` output yourself
   */
  readonly hostedZone?: route53.IHostedZone;
  /**
   * Runtime options from the operator's config file: routes, webauthn, session, jwt,
   * enrollment, log, metrics.namespace, server.portalBodyLimitBytes. Options the stack sets
   * itself (listeners, TLS, store, secrets, notifications) are refused.
   * @default - no routes; the runtime's defaults
   */
  readonly config?: KanmonConfigInput;
  /**
   * Where the server certificate comes from; see {@link CertificateSource}.
   * @default 'letsencrypt'
   */
  readonly certificates?: CertificateSource;
  /**
   * ACME settings; only with `certificates: 'letsencrypt'`.
   * @default - Let's Encrypt production, contact the first admin e-mail
   */
  readonly letsEncrypt?: LetsEncryptOptions;
  /**
   * An existing ACM certificate for the NLB; only with `certificates: 'acm'`.
   * @default - a new ACM certificate for `domain`, DNS-validated in `hostedZone` (without a
   * zone, the validation record must be added by hand while the deployment waits)
   */
  readonly acmCertificate?: acm.ICertificate;
  /**
   * The Secrets Manager secret holding `{"certificate","privateKey"}` PEM; required with
   * `certificates: 'imported'` and refused otherwise.
   * @default - none
   */
  readonly certificateSecret?: secretsmanager.ISecret;
  /**
   * Run in an existing VPC instead of creating one.
   * @default - a new two-AZ VPC
   */
  readonly vpc?: ec2.IVpc;
  /**
   * CIDR of the new VPC.
   * @default "10.0.0.0/16"
   */
  readonly vpcCidr?: string;
  /**
   * NAT gateways of the new VPC (0, 1 or 2). 0 needs `certificates` `acm` or `imported`,
   * because ACME needs the internet; AWS services are then reached through VPC endpoints.
   * @default 2
   */
  readonly natGateways?: number;
  /**
   * VPC flow logs for the new VPC.
   * @default true
   */
  readonly flowLogs?: boolean;
  /**
   * Tasks to run, spread over two availability zones.
   * @default 2
   */
  readonly desiredCount?: number;
  /**
   * CPU units per task.
   * @default 512
   */
  readonly cpu?: number;
  /**
   * Memory per task in MiB.
   * @default 1024
   */
  readonly memoryLimitMiB?: number;
  /**
   * CPU architecture of the tasks and the image.
   * @default ecs.CpuArchitecture.X86_64
   */
  readonly cpuArchitecture?: ecs.CpuArchitecture;
  /**
   * Allow ECS Exec into the tasks (debugging only).
   * @default false
   */
  readonly enableExecuteCommand?: boolean;
  /**
   * How long ECS ignores failing load balancer health checks of a new task.
   * @default - 5 minutes with `letsencrypt` (the first certificate is obtained at start-up), else 1 minute
   */
  readonly healthCheckGracePeriod?: Duration;
  /**
   * Retention of the container logs.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The container image.
   * @default - built from the repository's Dockerfile (Docker is needed at deploy, not at synth)
   */
  readonly image?: ecs.ContainerImage;
  /** @default - see {@link KanmonAlarmThresholds} */
  readonly alarmThresholds?: KanmonAlarmThresholds;
  /** @default - weekly forced redeployment, Sunday 03:00 UTC */
  readonly patching?: KanmonPatchingOptions;
  /**
   * Bucket for NLB access logs (TLS listeners only, i.e. with `acm`).
   * @default - none
   */
  readonly accessLogsBucket?: s3.IBucket;
  /**
   * How many days point-in-time recovery reaches back.
   * @default 35
   */
  readonly pointInTimeRecoveryDays?: number;
  /**
   * Tags for every resource, in addition to `Application: Kanmon`.
   * @default - only `Application: Kanmon`
   */
  readonly tags?: { [key: string]: string };
}

/**
 * A complete, monitored Kanmon gateway: network, store, service, load balancer, certificates,
 * DNS, alarms and patching.
 */
export class Kanmon extends Construct {
  public readonly network: KanmonNetwork;
  public readonly store: KanmonStore;
  public readonly alerts: KanmonAlerts;
  public readonly service: KanmonService;
  public readonly loadBalancer: KanmonLoadBalancer;
  public readonly monitoring: KanmonMonitoring;
  public readonly patching: KanmonPatching;
  /** The ACM certificate on the NLB, with `certificates: 'acm'`. */
  public readonly acmCertificate?: acm.ICertificate;
  /** The configuration handed to the runtime (deploy-time values are tokens). */
  public readonly runtimeConfig: KanmonConfigInput;

  constructor(scope: Construct, id: string, props: KanmonProps) {
    super(scope, id);
    const source = props.certificates ?? 'letsencrypt';
    this.validate(props, source);

    this.network = new KanmonNetwork(this, 'Network', {
      vpc: props.vpc,
      cidr: props.vpcCidr,
      natGateways: props.natGateways,
      flowLogs: props.flowLogs,
      extraInterfaceEndpoints: source === 'imported' ? [ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER] : [],
    });
    if (source === 'letsencrypt' && !this.network.hasInternetEgress) {
      throw new KanmonPropsError(this, `option 'natGateways' must be at least 1 with certificates "letsencrypt", because ACME needs the internet, got ${show(props.natGateways)}; use certificates "acm" or "imported" for a VPC without NAT`);
    }

    this.store = new KanmonStore(this, 'Store', { pointInTimeRecoveryDays: props.pointInTimeRecoveryDays });
    this.alerts = new KanmonAlerts(this, 'Alerts', { emails: props.adminEmails });

    if (source === 'acm') {
      this.acmCertificate =
        props.acmCertificate ??
        new acm.Certificate(this, 'Certificate', {
          domainName: props.domain,
          validation: acm.CertificateValidation.fromDns(props.hostedZone),
        });
    }

    const tls: RuntimeTlsConfig =
      source === 'letsencrypt'
        ? {
            source: 'acme',
            domains: [props.domain],
            email: props.letsEncrypt?.email ?? props.adminEmails[0]!,
            directoryUrl: props.letsEncrypt?.directoryUrl ?? LETS_ENCRYPT_DIRECTORY,
          }
        : source === 'imported'
          ? { source: 'imported', secretArn: props.certificateSecret!.secretArn }
          : { source: 'offloaded' };

    this.runtimeConfig = buildRuntimeConfig({
      domain: props.domain,
      tls,
      tableName: this.store.table.tableName,
      region: this.store.table.env.region,
      keyArn: this.store.key.keyArn,
      topicArn: this.alerts.topic.topicArn,
      proxyNetworks: [this.network.vpcCidr],
      base: props.config,
      // KanmonService's default task size is 512 CPU units (half a vCPU): one process.
      workers: workersForTaskCpu(props.cpu ?? 512),
    });
    // ECS refuses task definitions over 64 KiB; the config travels inside one.
    const configBytes = Buffer.byteLength(JSON.stringify(withPlaceholders(this.runtimeConfig)));
    if (configBytes > MAX_CONFIG_BYTES) {
      throw new KanmonPropsError(this, `option 'config' must serialize to at most ${MAX_CONFIG_BYTES} bytes to fit in the task definition, got ${configBytes} bytes`);
    }
    const configErrors = checkRuntimeConfig(this.runtimeConfig);
    if (configErrors.length > 0) {
      throw new KanmonPropsError(this, `the runtime configuration is invalid:\n  - ${configErrors.join('\n  - ')}`);
    }

    const cpuArchitecture = props.cpuArchitecture ?? ecs.CpuArchitecture.X86_64;
    this.service = new KanmonService(this, 'Service', {
      network: this.network,
      store: this.store,
      topic: this.alerts.topic,
      runtimeConfig: this.runtimeConfig,
      image: props.image ?? defaultImage(cpuArchitecture),
      certificateSecret: props.certificateSecret,
      desiredCount: props.desiredCount,
      cpu: props.cpu,
      memoryLimitMiB: props.memoryLimitMiB,
      cpuArchitecture,
      enableExecuteCommand: props.enableExecuteCommand,
      healthCheckGracePeriod: props.healthCheckGracePeriod ?? Duration.minutes(source === 'letsencrypt' ? 5 : 1),
      logRetention: props.logRetention,
    });

    this.loadBalancer = new KanmonLoadBalancer(this, 'LoadBalancer', {
      network: this.network,
      service: this.service,
      certificate: this.acmCertificate,
      accessLogsBucket: props.accessLogsBucket,
    });

    if (props.hostedZone) {
      new route53.ARecord(this, 'AliasRecord', {
        zone: props.hostedZone,
        // Fully qualified, so a zone imported by id alone (no name) works.
        recordName: `${props.domain}.`,
        target: route53.RecordTarget.fromAlias(new route53Targets.LoadBalancerTarget(this.loadBalancer.loadBalancer)),
      });
    }

    this.monitoring = new KanmonMonitoring(this, 'Monitoring', {
      topic: this.alerts.topic,
      service: this.service,
      loadBalancer: this.loadBalancer,
      table: this.store.table,
      namespace: metricsNamespace(props.config),
      acmCertificate: this.acmCertificate,
      thresholds: props.alarmThresholds,
    });

    this.patching = new KanmonPatching(this, 'Patching', {
      ...props.patching,
      cluster: this.service.cluster,
      service: this.service.service,
    });

    Tags.of(this).add('Application', 'Kanmon');
    for (const [key, value] of Object.entries(props.tags ?? {})) Tags.of(this).add(key, value);

    new CfnOutput(this, 'Url', { value: `https://${props.domain}/.kanmon/`, description: 'The portal' });
    new CfnOutput(this, 'LoadBalancerDnsName', {
      value: this.loadBalancer.loadBalancer.loadBalancerDnsName,
      description: props.hostedZone ? 'The NLB (the alias record points here)' : `Point ${props.domain} here (CNAME, or an alias A record)`,
    });
    new CfnOutput(this, 'TableName', { value: this.store.table.tableName, description: 'The store table (point-in-time recovery on)' });
    new CfnOutput(this, 'AlertTopicArn', { value: this.alerts.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    new CfnOutput(this, 'ClusterName', { value: this.service.cluster.clusterName });
    new CfnOutput(this, 'ContainerLogGroup', { value: this.service.logGroup.logGroupName, description: 'Runtime logs and EMF metrics' });
    new CfnOutput(this, 'TaskStopLogGroup', { value: this.monitoring.taskStopLogGroup.logGroupName, description: 'Why tasks stopped (container restarts)' });
    new CfnOutput(this, 'ServiceName', { value: this.service.service.serviceName });
  }

  private validate(props: KanmonProps, source: CertificateSource): void {
    requireLiteral(this, 'domain', props.domain);
    if (!isHostName(props.domain)) {
      throw new KanmonPropsError(this, `option 'domain' must be a lower-case host name with a dot, like gate.example.com, got ${show(props.domain)}`);
    }
    if (props.adminEmails.length === 0) {
      throw new KanmonPropsError(this, `option 'adminEmails' must list at least one e-mail address, got []`);
    }
    props.adminEmails.forEach((email, i) => {
      if (!Token.isUnresolved(email) && !isEmail(email)) {
        throw new KanmonPropsError(this, `option 'adminEmails[${i}]' must be an e-mail address, got ${show(email)}`);
      }
    });
    const zoneName = concreteZoneName(props.hostedZone);
    if (zoneName !== undefined) {
      const zone = zoneName.replace(/\.$/, '').toLowerCase();
      if (props.domain !== zone && !props.domain.endsWith(`.${zone}`)) {
        throw new KanmonPropsError(this, `option 'hostedZone' must be the zone of ${show(props.domain)} or a parent of it, got zone ${show(zoneName)}`);
      }
    }
    if (!(CERTIFICATE_SOURCES as readonly string[]).includes(source)) {
      throw new KanmonPropsError(this, `option 'certificates' must be one of ${CERTIFICATE_SOURCES.map((s) => `"${s}"`).join(', ')}, got ${show(source)}`);
    }
    if (props.letsEncrypt && source !== 'letsencrypt') {
      throw new KanmonPropsError(this, `option 'letsEncrypt' applies only to certificates "letsencrypt", got certificates ${show(source)}`);
    }
    if (props.letsEncrypt?.email !== undefined && !isEmail(props.letsEncrypt.email)) {
      throw new KanmonPropsError(this, `option 'letsEncrypt.email' must be an e-mail address, got ${show(props.letsEncrypt.email)}`);
    }
    if (props.acmCertificate && source !== 'acm') {
      throw new KanmonPropsError(this, `option 'acmCertificate' applies only to certificates "acm", got certificates ${show(source)}`);
    }
    if (source === 'imported' && !props.certificateSecret) {
      throw new KanmonPropsError(this, `option 'certificateSecret' is required with certificates "imported", got nothing`);
    }
    if (props.certificateSecret && source !== 'imported') {
      throw new KanmonPropsError(this, `option 'certificateSecret' applies only to certificates "imported", got certificates ${show(source)}`);
    }
    if (!Array.isArray(props.config?.routes) || props.config.routes.length === 0) {
      throw new KanmonPropsError(this, `option 'config' must define at least one route, got ${show(props.config?.routes)}: a node without routes is not ready (/readyz), so the load balancer would never send it traffic; put routes in the config file (e.g. {"id": "intranet", "upstream": "http://10.0.1.20:8080"})`);
    }
    const owned = stackOwnedOptionsIn(props.config);
    if (owned.length > 0) {
      throw new KanmonPropsError(this, `option 'config' must not set ${owned.map((o) => `'${o}'`).join(', ')}: the stack sets ${owned.length === 1 ? 'it' : 'them'} from its own resources; remove ${owned.length === 1 ? 'it' : 'them'} from the config file`);
    }
  }
}

/** The zone name when it is known at synth time; a zone imported by id alone has none. */
function concreteZoneName(zone: route53.IHostedZone | undefined): string | undefined {
  if (!zone) return undefined;
  try {
    const name = zone.zoneName;
    return Token.isUnresolved(name) ? undefined : name;
  } catch {
    return undefined;
  }
}

function defaultImage(cpuArchitecture: ecs.CpuArchitecture): ecs.ContainerImage {
  const options: ecrAssets.DockerImageAssetOptions = {
    file: 'Dockerfile',
    exclude: [...IMAGE_BUILD_EXCLUDES],
    platform: cpuArchitecture === ecs.CpuArchitecture.ARM64 ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
  };
  return ecs.ContainerImage.fromAsset(REPOSITORY_ROOT, options);
}
