import { TimeZone } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import { Construct } from 'constructs';

export interface KanmonPatchingOptions {
  /**
   * Whether to force a new deployment on a schedule.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * When to force a new deployment.
   * @default - every Sunday 03:00 UTC (Sunday noon in Japan, Saturday night in the Americas)
   */
  readonly schedule?: scheduler.ScheduleExpression;
}

export interface KanmonPatchingProps extends KanmonPatchingOptions {
  readonly cluster: ecs.ICluster;
  readonly service: ecs.BaseService;
}

/** The default patch window. */
export const DEFAULT_PATCH_SCHEDULE = scheduler.ScheduleExpression.cron({
  weekDay: 'SUN',
  hour: '3',
  minute: '0',
  timeZone: TimeZone.ETC_UTC,
});

/**
 * Restarts the tasks on a schedule (an ECS "force new deployment"), so they move to Fargate's
 * latest platform patches. The rolling deployment keeps 100 % of the tasks serving and the
 * circuit breaker rolls back a deployment that does not become healthy.
 */
export class KanmonPatching extends Construct {
  /** Absent when patching is disabled. */
  public readonly schedule?: scheduler.Schedule;

  constructor(scope: Construct, id: string, props: KanmonPatchingProps) {
    super(scope, id);
    if (props.enabled === false) return;

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Kanmon: force a new deployment so tasks restart on the latest Fargate platform patches',
      schedule: props.schedule ?? DEFAULT_PATCH_SCHEDULE,
      target: new targets.Universal({
        service: 'ecs',
        action: 'updateService',
        input: scheduler.ScheduleTargetInput.fromObject({
          Cluster: props.cluster.clusterArn,
          Service: props.service.serviceArn,
          ForceNewDeployment: true,
        }),
        // There is no grant for ecs:UpdateService; this is the one call, on the one service.
        policyStatements: [
          new iam.PolicyStatement({ actions: ['ecs:UpdateService'], resources: [props.service.serviceArn] }),
        ],
        retryAttempts: 3,
      }),
    });
  }
}
