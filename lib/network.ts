import { Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { KanmonPropsError, isCidr, requireInteger, show } from './validation.js';

export interface KanmonNetworkProps {
  /**
   * An existing VPC to run in. It needs public subnets (for the NLB) and private subnets with
   * egress (for the tasks) in at least two availability zones.
   * @default - a new VPC across two availability zones
   */
  readonly vpc?: ec2.IVpc;
  /**
   * CIDR of the new VPC. Only for a new VPC.
   * @default "10.0.0.0/16"
   */
  readonly cidr?: string;
  /**
   * Managed NAT gateways of the new VPC: 2 (one per AZ, so egress survives the loss of an AZ),
   * 1 (cheaper, egress depends on one AZ) or 0 (no internet egress: the tasks reach AWS through
   * VPC endpoints only, so ACME and upstreams on the internet are unreachable). Only for a new VPC.
   * @default 2
   */
  readonly natGateways?: number;
  /**
   * Extra interface endpoints to create when `natGateways` is 0 (e.g. Secrets Manager for an
   * imported certificate). Ignored when the VPC has NAT gateways or was passed in.
   * @default - none beyond DynamoDB, S3, KMS, CloudWatch Logs, SNS and ECR
   */
  readonly extraInterfaceEndpoints?: readonly ec2.InterfaceVpcEndpointAwsService[];
  /**
   * Record VPC flow logs of the new VPC to CloudWatch Logs.
   * @default true
   */
  readonly flowLogs?: boolean;
  /**
   * Retention of the flow log group.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

/**
 * Where Kanmon runs: public subnets for the load balancer, private subnets for the tasks.
 */
export class KanmonNetwork extends Construct {
  public readonly vpc: ec2.IVpc;
  /** Subnets the tasks run in. */
  public readonly taskSubnets: ec2.SubnetSelection;
  /** Subnets the internet-facing NLB is placed in. */
  public readonly loadBalancerSubnets: ec2.SubnetSelection;
  /** The VPC CIDR: the only network the runtime accepts PROXY protocol headers from. */
  public readonly vpcCidr: string;
  /** Whether the tasks can reach the internet (needed for ACME and internet upstreams). */
  public readonly hasInternetEgress: boolean;

  constructor(scope: Construct, id: string, props: KanmonNetworkProps = {}) {
    super(scope, id);

    if (props.vpc) {
      for (const option of ['cidr', 'natGateways', 'flowLogs'] as const) {
        if (props[option] !== undefined) {
          throw new KanmonPropsError(this, `option '${option}' applies only to a new VPC; remove it or the 'vpc' option, got ${show(props[option])} with an existing VPC`);
        }
      }
      this.vpc = props.vpc;
      const azs = props.vpc.availabilityZones;
      if (!azs.some((az) => Token.isUnresolved(az)) && azs.length < 2) {
        throw new KanmonPropsError(this, `option 'vpc' must span at least 2 availability zones, got ${show(azs)}`);
      }
      if (privateSubnetsWithEgress(props.vpc) === 0 && !Token.isUnresolved(props.vpc.vpcId)) {
        throw new KanmonPropsError(this, `option 'vpc' must have private subnets with egress for the tasks, got none in ${props.vpc.vpcId}`);
      }
      this.taskSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      this.hasInternetEgress = true;
      this.vpcCidr = props.vpc.vpcCidrBlock;
    } else {
      const cidr = props.cidr ?? '10.0.0.0/16';
      if (!isCidr(cidr) || Number(cidr.split('/')[1]) > 24) {
        throw new KanmonPropsError(this, `option 'cidr' must be an IPv4 CIDR of /24 or larger like 10.0.0.0/16, got ${show(cidr)}`);
      }
      requireInteger(this, 'natGateways', props.natGateways, 0, 2);
      const natGateways = props.natGateways ?? 2;
      const privateType = natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED;
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(cidr),
        maxAzs: 2,
        natGateways,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'tasks', subnetType: privateType, cidrMask: 24 },
        ],
        // Gateway endpoints cost nothing and keep the store and image layers off the NAT path.
        gatewayEndpoints: {
          DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
          S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        },
      });
      if (props.flowLogs ?? true) {
        const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
          retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
        });
        vpc.addFlowLog('FlowLog', {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
          trafficType: ec2.FlowLogTrafficType.ALL,
        });
      }
      if (natGateways === 0) {
        const services = [
          ec2.InterfaceVpcEndpointAwsService.KMS,
          ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
          ec2.InterfaceVpcEndpointAwsService.SNS,
          ec2.InterfaceVpcEndpointAwsService.ECR,
          ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
          ...(props.extraInterfaceEndpoints ?? []),
        ];
        // One security group for all endpoints: HTTPS from inside the VPC, nothing out.
        const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
          vpc,
          description: 'Kanmon VPC interface endpoints: HTTPS from inside the VPC',
          allowAllOutbound: false,
        });
        endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'HTTPS to AWS APIs from inside the VPC');
        for (const service of services) {
          vpc.addInterfaceEndpoint(endpointId(service), {
            service,
            subnets: { subnetType: privateType },
            privateDnsEnabled: true,
            securityGroups: [endpointSecurityGroup],
            open: false,
          });
        }
      }
      this.vpc = vpc;
      this.taskSubnets = { subnetType: privateType };
      this.hasInternetEgress = natGateways > 0;
      this.vpcCidr = cidr;
    }
    this.loadBalancerSubnets = { subnetType: ec2.SubnetType.PUBLIC };
  }
}

function endpointId(service: ec2.InterfaceVpcEndpointAwsService): string {
  const name = service.shortName.replace(/[^a-zA-Z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase());
  return `${name.charAt(0).toUpperCase()}${name.slice(1)}Endpoint`;
}

function privateSubnetsWithEgress(vpc: ec2.IVpc): number {
  try {
    return vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds.length;
  } catch {
    // selectSubnets throws when the VPC has no subnet group of that type at all.
    return 0;
  }
}
