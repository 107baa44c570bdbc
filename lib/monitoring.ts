import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import type { KanmonLoadBalancer } from './load-balancer.js';
import { KANMON_METRICS } from './metrics.js';
import type { KanmonService } from './service.js';
import { KanmonPropsError, requireInteger, show } from './validation.js';

/** Alarm thresholds. */
export interface KanmonAlarmThresholds {
  /**
   * Proxied responses with a 5xx status, summed over all routes, per 5 minutes.
   * @default 10
   */
  readonly proxied5xxPer5Minutes?: number;
  /**
   * Upstream failures without a response (refused, reset, timed out), over all routes, per 5 minutes.
   * @default 10
   */
  readonly upstreamErrorsPer5Minutes?: number;
  /**
   * Failed logins over all methods per 5 minutes: above this is a spike (guessing, a broken
   * authenticator roll-out, or an attack).
   * @default 20
   */
  readonly loginFailuresPer5Minutes?: number;
  /**
   * Alarm when the served certificate expires in fewer days than this.
   * @default 14
   */
  readonly certificateExpiryDays?: number;
}

export interface KanmonMonitoringProps {
  readonly topic: sns.ITopic;
  readonly service: KanmonService;
  readonly loadBalancer: KanmonLoadBalancer;
  readonly table: dynamodb.ITable;
  /** Namespace the runtime's EMF metrics are in (config `metrics.namespace`). */
  readonly namespace: string;
  /**
   * The ACM certificate when the NLB terminates TLS; its expiry comes from ACM instead of the runtime.
   * @default - expiry comes from the runtime's ServerCertificateDaysToExpiry metric
   */
  readonly acmCertificate?: acm.ICertificate;
  /** @default - see {@link KanmonAlarmThresholds} */
  readonly thresholds?: KanmonAlarmThresholds;
  /**
   * Prefix of alarm names and of the dashboard name.
   * @default the stack name
   */
  readonly namePrefix?: string;
  /**
   * Retention of the log group that records why tasks stopped.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly taskStopRetention?: logs.RetentionDays;
}

/** Stable suffixes of the alarm names (`<prefix>-<suffix>`); the README's runbook uses them. */
export const ALARMS = {
  healthyHosts: 'HealthyHostsBelowTwo',
  unhealthyHosts: 'UnhealthyHosts',
  runningTasks: 'RunningTasksBelowDesired',
  proxied5xx: 'Proxied5xx',
  upstreamErrors: 'UpstreamErrors',
  loginFailures: 'LoginFailureSpike',
  certificateExpiry: 'CertificateExpiring',
  dynamoDbThrottles: 'DynamoDbThrottles',
  dynamoDbErrors: 'DynamoDbSystemErrors',
  containerRestarts: 'ContainerRestarts',
} as const;

/**
 * Self-monitoring: one alarm per failure an operator must act on, each notifying the alert
 * topic (on alarm and on recovery), and a dashboard with the same signals.
 */
export class KanmonMonitoring extends Construct {
  public readonly alarms: Record<keyof typeof ALARMS, cloudwatch.Alarm>;
  public readonly dashboard: cloudwatch.Dashboard;
  /** Matches tasks of the service that stopped because their container exited or failed health checks. */
  public readonly taskStopRule: events.Rule;
  /** The stopped-task events, with ECS's stop reason: where the container-restart runbook starts. */
  public readonly taskStopLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: KanmonMonitoringProps) {
    super(scope, id);
    const t = props.thresholds ?? {};
    requireInteger(this, 'thresholds.proxied5xxPer5Minutes', t.proxied5xxPer5Minutes, 1, 1_000_000);
    requireInteger(this, 'thresholds.upstreamErrorsPer5Minutes', t.upstreamErrorsPer5Minutes, 1, 1_000_000);
    requireInteger(this, 'thresholds.loginFailuresPer5Minutes', t.loginFailuresPer5Minutes, 1, 1_000_000);
    requireInteger(this, 'thresholds.certificateExpiryDays', t.certificateExpiryDays, 1, 60);
    if (!/^[A-Za-z0-9_\-./#]{1,200}$/.test(props.namespace) || props.namespace.startsWith('AWS/')) {
      throw new KanmonPropsError(this, `option 'namespace' must be a custom CloudWatch namespace (letters, digits, _-./#, not starting with AWS/), got ${show(props.namespace)}`);
    }
    const prefix = props.namePrefix ?? Stack.of(this).stackName;
    const ns = props.namespace;
    const fiveMinutes = Duration.minutes(5);
    const oneMinute = Duration.minutes(1);
    const { cluster, service } = props.service;
    const tg = props.loadBalancer.httpsTargetGroup;

    // --- signals -----------------------------------------------------------------------
    const healthyHosts = tg.metrics.healthyHostCount({ statistic: cloudwatch.Stats.MINIMUM, period: oneMinute });
    const unhealthyHosts = tg.metrics.unHealthyHostCount({ statistic: cloudwatch.Stats.MAXIMUM, period: oneMinute });

    const insights = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: 'ECS/ContainerInsights',
        metricName,
        dimensionsMap: { ClusterName: cluster.clusterName, ServiceName: service.serviceName },
        statistic: cloudwatch.Stats.AVERAGE,
        period: oneMinute,
      });
    const runningTasks = insights('RunningTaskCount');
    const desiredTasks = insights('DesiredTaskCount');
    const missingTasks = new cloudwatch.MathExpression({
      expression: 'desired - running',
      usingMetrics: { desired: desiredTasks, running: runningTasks },
      label: 'Tasks missing (desired - running)',
      period: oneMinute,
    });

    // Metrics Insights queries sum over every route/method the runtime reports, including
    // routes added after deploy, without one metric per route in the alarm.
    const schema = (def: { name: string; dimensions: readonly string[] }) =>
      `SCHEMA("${ns}"${def.dimensions.map((d) => `, ${d}`).join('')})`;
    const query = (expression: string, label: string, period = fiveMinutes) =>
      new cloudwatch.MathExpression({ expression, label, period, usingMetrics: {} });
    const proxied5xx = query(`SELECT SUM(${KANMON_METRICS.requests.name}) FROM ${schema(KANMON_METRICS.requests)} WHERE StatusClass = '5xx'`, 'Proxied 5xx responses');
    const upstreamErrors = query(`SELECT SUM(${KANMON_METRICS.upstreamErrors.name}) FROM ${schema(KANMON_METRICS.upstreamErrors)}`, 'Upstream errors');
    const loginFailures = query(`SELECT SUM(${KANMON_METRICS.loginFailure.name}) FROM ${schema(KANMON_METRICS.loginFailure)}`, 'Login failures');

    const certificateDays = props.acmCertificate
      ? props.acmCertificate.metricDaysToExpiry({ period: Duration.days(1), statistic: cloudwatch.Stats.MINIMUM })
      : new cloudwatch.Metric({
          namespace: ns,
          metricName: KANMON_METRICS.serverCertificateDaysToExpiry.name,
          statistic: cloudwatch.Stats.MINIMUM,
          period: Duration.hours(1),
        });

    const tableMetric = (metricName: string, dimensionsMap: Record<string, string> = {}) =>
      new cloudwatch.Metric({
        namespace: 'AWS/DynamoDB',
        metricName,
        dimensionsMap: { TableName: props.table.tableName, ...dimensionsMap },
        statistic: cloudwatch.Stats.SUM,
        period: fiveMinutes,
      });
    const throttles = new cloudwatch.MathExpression({
      expression: 'FILL(r, 0) + FILL(w, 0)',
      usingMetrics: { r: tableMetric('ReadThrottleEvents'), w: tableMetric('WriteThrottleEvents') },
      label: 'DynamoDB throttle events',
      period: fiveMinutes,
    });
    const systemErrors = props.table.metricSystemErrorsForOperations({
      operations: [
        dynamodb.Operation.GET_ITEM,
        dynamodb.Operation.PUT_ITEM,
        dynamodb.Operation.UPDATE_ITEM,
        dynamodb.Operation.DELETE_ITEM,
        dynamodb.Operation.QUERY,
        dynamodb.Operation.BATCH_GET_ITEM,
        dynamodb.Operation.BATCH_WRITE_ITEM,
        dynamodb.Operation.TRANSACT_GET_ITEMS,
        dynamodb.Operation.TRANSACT_WRITE_ITEMS,
        dynamodb.Operation.SCAN,
      ],
      period: fiveMinutes,
      label: 'DynamoDB system errors',
    });

    // Container restarts: a task of the service stopped because its essential container
    // exited, failed to start, or failed its container or load balancer health checks.
    // Deployments and scale-in stop tasks too, with other reasons, and are not matched.
    this.taskStopLogGroup = new logs.LogGroup(this, 'TaskStops', {
      retention: props.taskStopRetention ?? logs.RetentionDays.ONE_YEAR,
    });
    this.taskStopRule = new events.Rule(this, 'TaskStopRule', {
      description: 'Kanmon tasks stopped by a container exit or a failed health check',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: {
          clusterArn: [cluster.clusterArn],
          group: [`service:${service.serviceName}`],
          lastStatus: ['STOPPED'],
          $or: [
            { stopCode: ['EssentialContainerExited', 'TaskFailedToStart'] },
            { stoppedReason: events.Match.prefix('Task failed') },
          ],
        },
      },
    });
    // The log group's resource policy lets EventBridge write; a grant to the service principals.
    this.taskStopLogGroup.grantWrite(new iam.CompositePrincipal(new iam.ServicePrincipal('events.amazonaws.com'), new iam.ServicePrincipal('delivery.logs.amazonaws.com')));
    const logGroupArn = Stack.of(this).formatArn({
      service: 'logs',
      resource: 'log-group',
      resourceName: this.taskStopLogGroup.logGroupName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.taskStopRule.addTarget({ bind: () => ({ arn: logGroupArn, targetResource: this.taskStopLogGroup }) });
    const restarts = new cloudwatch.Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { RuleName: this.taskStopRule.ruleName },
      statistic: cloudwatch.Stats.SUM,
      period: fiveMinutes,
    });

    // --- alarms ------------------------------------------------------------------------
    const notify = new actions.SnsAction(props.topic);
    const alarm = (key: keyof typeof ALARMS, metric: cloudwatch.IMetric, options: Omit<cloudwatch.CreateAlarmOptions, 'alarmName'>) => {
      const a = new cloudwatch.Alarm(this, key.charAt(0).toUpperCase() + key.slice(1), { metric, alarmName: `${prefix}-${ALARMS[key]}`, ...options });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      return a;
    };
    const GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
    const GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD;
    const notBreaching = cloudwatch.TreatMissingData.NOT_BREACHING;

    this.alarms = {
      healthyHosts: alarm('healthyHosts', healthyHosts, {
        alarmDescription: 'Fewer than 2 healthy Kanmon targets behind the NLB for 3 minutes: the gateway has lost its redundancy or is down.',
        threshold: 2, comparisonOperator: LT, evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
      unhealthyHosts: alarm('unhealthyHosts', unhealthyHosts, {
        alarmDescription: 'A Kanmon target has failed its /readyz health check for 3 minutes.',
        threshold: 0, comparisonOperator: GT, evaluationPeriods: 3, treatMissingData: notBreaching,
      }),
      runningTasks: alarm('runningTasks', missingTasks, {
        alarmDescription: 'The service has run fewer tasks than desired for 5 minutes: tasks crash, fail to start or cannot be placed.',
        threshold: 0.5, comparisonOperator: GT, evaluationPeriods: 5,
      }),
      proxied5xx: alarm('proxied5xx', proxied5xx, {
        alarmDescription: `At least ${t.proxied5xxPer5Minutes ?? 10} proxied responses with a 5xx status in 5 minutes, over all routes.`,
        threshold: t.proxied5xxPer5Minutes ?? 10, comparisonOperator: GTE, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      upstreamErrors: alarm('upstreamErrors', upstreamErrors, {
        alarmDescription: `At least ${t.upstreamErrorsPer5Minutes ?? 10} upstream failures (refused, reset, timed out) in 5 minutes, over all routes.`,
        threshold: t.upstreamErrorsPer5Minutes ?? 10, comparisonOperator: GTE, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      loginFailures: alarm('loginFailures', loginFailures, {
        alarmDescription: `At least ${t.loginFailuresPer5Minutes ?? 20} failed logins in 5 minutes: password-guessing style attack, or a broken authenticator roll-out.`,
        threshold: t.loginFailuresPer5Minutes ?? 20, comparisonOperator: GTE, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      certificateExpiry: alarm('certificateExpiry', certificateDays, {
        alarmDescription: `The server certificate expires in fewer than ${t.certificateExpiryDays ?? 14} days: renewal is failing.`,
        threshold: t.certificateExpiryDays ?? 14, comparisonOperator: LT, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      dynamoDbThrottles: alarm('dynamoDbThrottles', throttles, {
        alarmDescription: 'DynamoDB throttled requests to the Kanmon table.',
        threshold: 0, comparisonOperator: GT, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      dynamoDbErrors: alarm('dynamoDbErrors', systemErrors, {
        alarmDescription: 'DynamoDB answered requests to the Kanmon table with internal errors.',
        threshold: 0, comparisonOperator: GT, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
      containerRestarts: alarm('containerRestarts', restarts, {
        alarmDescription: 'A Kanmon container exited or failed its health checks and ECS replaced the task. Reasons are in the task-stop log group.',
        threshold: 0, comparisonOperator: GT, evaluationPeriods: 1, treatMissingData: notBreaching,
      }),
    };

    // --- dashboard ---------------------------------------------------------------------
    const requestsByClass = query(
      `SELECT SUM(${KANMON_METRICS.requests.name}) FROM ${schema(KANMON_METRICS.requests)} GROUP BY StatusClass`,
      'Requests by status class',
    );
    const upstream5xx = query(`SELECT SUM(${KANMON_METRICS.upstream5xx.name}) FROM ${schema(KANMON_METRICS.upstream5xx)} GROUP BY Route`, 'Upstream 5xx by route');
    const latency = query(`SELECT MAX(${KANMON_METRICS.upstreamLatency.name}) FROM ${schema(KANMON_METRICS.upstreamLatency)} GROUP BY Route`, 'Upstream latency (max, ms) by route');
    const logins = (def: { name: string; dimensions: readonly string[] }, label: string) =>
      query(`SELECT SUM(${def.name}) FROM ${schema(def)} GROUP BY Method`, label);
    const activeSessions = new cloudwatch.Metric({ namespace: ns, metricName: KANMON_METRICS.activeSessions.name, statistic: cloudwatch.Stats.MAXIMUM, period: fiveMinutes });
    const graph = (title: string, left: cloudwatch.IMetric[], annotations: cloudwatch.HorizontalAnnotation[] = []) =>
      new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, leftAnnotations: annotations });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: prefix,
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(this.alarms), width: 24, height: 4 }),
    );
    this.dashboard.addWidgets(
      graph('NLB targets (443)', [healthyHosts, unhealthyHosts], [{ value: 2, label: 'healthy minimum' }]),
      graph('ECS tasks', [runningTasks, desiredTasks]),
      graph('Container restarts', [restarts]),
    );
    this.dashboard.addWidgets(
      graph('Requests by status class', [requestsByClass]),
      graph('Proxied 5xx / upstream errors', [proxied5xx, upstreamErrors, upstream5xx]),
      graph('Upstream timeouts (504) and refused bodies (413)', [
        query(`SELECT SUM(${KANMON_METRICS.upstreamTimeouts.name}) FROM ${schema(KANMON_METRICS.upstreamTimeouts)} GROUP BY Route`, 'Upstream timeouts by route'),
        query(`SELECT SUM(${KANMON_METRICS.requestBodyTooLarge.name}) FROM ${schema(KANMON_METRICS.requestBodyTooLarge)} GROUP BY Route`, 'Request bodies too large by route'),
      ]),
      graph('Upstream latency', [latency]),
    );
    this.dashboard.addWidgets(
      graph('Logins', [logins(KANMON_METRICS.loginSuccess, 'Login successes by method'), logins(KANMON_METRICS.loginFailure, 'Login failures by method')]),
      graph('Active sessions', [activeSessions]),
      graph('Certificate days to expiry', [certificateDays], [{ value: t.certificateExpiryDays ?? 14, label: 'alarm' }]),
    );
    this.dashboard.addWidgets(
      graph('DynamoDB throttles and system errors', [throttles, systemErrors]),
      graph('Self-check failures and store errors', [
        query(`SELECT SUM(${KANMON_METRICS.selfCheckFailures.name}) FROM ${schema(KANMON_METRICS.selfCheckFailures)} GROUP BY Check`, 'Self-check failures by check'),
        query(`SELECT SUM(${KANMON_METRICS.storeErrors.name}) FROM ${schema(KANMON_METRICS.storeErrors)}`, 'Failed store calls'),
      ]),
      graph('Server certificate renewal failures', [
        new cloudwatch.Metric({ namespace: ns, metricName: KANMON_METRICS.serverCertificateRenewalFailures.name, statistic: cloudwatch.Stats.SUM, period: Duration.hours(1) }),
      ]),
      graph('Client certificates expiring soon', [
        new cloudwatch.Metric({ namespace: ns, metricName: KANMON_METRICS.clientCertificatesExpiring.name, statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1) }),
      ]),
    );
  }
}
