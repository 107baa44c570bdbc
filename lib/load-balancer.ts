import { Duration, Stack, Token } from 'aws-cdk-lib';
import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeNag } from './nag.js';
import { KanmonPropsError } from './validation.js';
import type { KanmonNetwork } from './network.js';
import { CONTAINER_PORTS } from './runtime-config.js';
import type { KanmonService } from './service.js';

/** The public ports. */
export const PUBLIC_PORTS = { https: 443, http: 80 } as const;

/** Path of the readiness endpoint on the internal health port. */
export const READINESS_PATH = '/readyz';

export interface KanmonLoadBalancerProps {
  readonly network: KanmonNetwork;
  readonly service: KanmonService;
  /**
   * With a certificate the NLB terminates TLS on 443 and forwards plain TCP; without one, 443
   * is TCP passthrough and TLS (and mTLS) ends in the container.
   * @default - TCP passthrough
   */
  readonly certificate?: acm.ICertificate;
  /**
   * Bucket for NLB access logs (the NLB writes them for TLS listeners only).
   * @default - no access logs
   */
  readonly accessLogsBucket?: s3.IBucket;
  /**
   * How long a deregistering task keeps its connections before they are closed.
   * @default Duration.seconds(30)
   */
  readonly deregistrationDelay?: Duration;
}

/**
 * The internet-facing Network Load Balancer: 443 and 80 in, PROXY protocol v2 to the tasks
 * so the runtime learns each client's address, health checks on the internal health port.
 */
export class KanmonLoadBalancer extends Construct {
  public readonly loadBalancer: elbv2.NetworkLoadBalancer;
  public readonly securityGroup: ec2.SecurityGroup;
  /** Receives 443; its health is what the healthy-host alarms watch. */
  public readonly httpsTargetGroup: elbv2.NetworkTargetGroup;
  /** Receives 80 (ACME HTTP-01 and the redirect to https). */
  public readonly httpTargetGroup: elbv2.NetworkTargetGroup;

  constructor(scope: Construct, id: string, props: KanmonLoadBalancerProps) {
    super(scope, id);
    const { vpc } = props.network;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'Kanmon NLB: 443 and 80 from anywhere; to the tasks only on their listener and health ports',
      allowAllOutbound: false,
    });
    this.securityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(PUBLIC_PORTS.https), 'HTTPS from clients');
    this.securityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(PUBLIC_PORTS.http), 'HTTP from clients: ACME HTTP-01 and the redirect to https');

    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'Nlb', {
      vpc,
      internetFacing: true,
      vpcSubnets: props.network.loadBalancerSubnets,
      crossZoneEnabled: true,
      securityGroups: [this.securityGroup],
    });
    if (props.accessLogsBucket) {
      // The bucket policy names the region's ELB log-delivery principal, so the region must be known.
      if (Token.isUnresolved(Stack.of(this).region)) {
        throw new KanmonPropsError(this, `option 'accessLogsBucket' needs a stack with an explicit region (env), got an environment-agnostic stack`);
      }
      this.loadBalancer.logAccessLogs(props.accessLogsBucket, 'kanmon-nlb');
    }

    this.httpsTargetGroup = this.targetGroup('HttpsTargets', CONTAINER_PORTS.tls, props);
    this.httpTargetGroup = this.targetGroup('HttpTargets', CONTAINER_PORTS.http, props);

    this.loadBalancer.addListener('Https', {
      port: PUBLIC_PORTS.https,
      ...(props.certificate
        ? { protocol: elbv2.Protocol.TLS, certificates: [elbv2.ListenerCertificate.fromCertificateManager(props.certificate)] }
        : { protocol: elbv2.Protocol.TCP }),
      defaultTargetGroups: [this.httpsTargetGroup],
    });
    this.loadBalancer.addListener('Http', {
      port: PUBLIC_PORTS.http,
      protocol: elbv2.Protocol.TCP,
      defaultTargetGroups: [this.httpTargetGroup],
    });

    this.httpsTargetGroup.addTarget(props.service.service.loadBalancerTarget({ containerName: props.service.container.containerName, containerPort: CONTAINER_PORTS.tls }));
    this.httpTargetGroup.addTarget(props.service.service.loadBalancerTarget({ containerName: props.service.container.containerName, containerPort: CONTAINER_PORTS.http }));

    // The tasks accept traffic from the NLB only; the health port is never behind a listener.
    const tasks = props.service.service.connections;
    tasks.allowFrom(this.loadBalancer, ec2.Port.tcp(CONTAINER_PORTS.tls), 'TLS (or offloaded HTTP) from the NLB, with PROXY v2');
    tasks.allowFrom(this.loadBalancer, ec2.Port.tcp(CONTAINER_PORTS.http), 'HTTP from the NLB, with PROXY v2');
    tasks.allowFrom(this.loadBalancer, ec2.Port.tcp(CONTAINER_PORTS.health), 'Health checks from the NLB');

    acknowledgeNag(
      this.securityGroup,
      'AwsSolutions-EC23',
      'Kanmon is an internet-facing login gateway: ports 443 and 80 must be reachable by any client. Only these two ports are open; every request is authenticated by Kanmon itself.',
    );
    if (!props.accessLogsBucket) {
      acknowledgeNag(
        this.loadBalancer,
        'AwsSolutions-ELB2',
        'NLB access logs cover TLS listeners only, and with passthrough there is none; the runtime logs every request with the client address it reads from PROXY v2. Pass accessLogsBucket to enable them.',
      );
    }
  }

  private targetGroup(id: string, port: number, props: KanmonLoadBalancerProps): elbv2.NetworkTargetGroup {
    return new elbv2.NetworkTargetGroup(this, id, {
      vpc: props.network.vpc,
      port,
      protocol: elbv2.Protocol.TCP,
      targetType: elbv2.TargetType.IP,
      proxyProtocolV2: true,
      // With PROXY v2 the client address travels in the header; the packets come from the NLB,
      // which is what the tasks' security group allows.
      preserveClientIp: false,
      deregistrationDelay: props.deregistrationDelay ?? Duration.seconds(30),
      connectionTermination: true,
      healthCheck: {
        protocol: elbv2.Protocol.HTTP,
        port: String(CONTAINER_PORTS.health),
        path: READINESS_PATH,
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });
  }
}
