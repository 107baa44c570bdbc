import { App, type Stack } from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KanmonConfigInput } from '../../runtime/config/schema.js';
import { KanmonStack, type KanmonStackProps } from '../../lib/index.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The feature flags from cdk.json, so tests synthesize what `cdk synth` does. */
export const CDK_CONTEXT: Record<string, unknown> = JSON.parse(readFileSync(join(REPO, 'cdk.json'), 'utf8')).context;

export const ROUTES: KanmonConfigInput['routes'] = [
  { id: 'groupware', match: { host: 'gate.example.com', pathPrefix: '/' }, upstream: 'http://10.0.1.10:8080', policy: { factors: [['passkey']] } },
];

export const BASE_PROPS: KanmonStackProps = {
  domain: 'gate.example.com',
  adminEmails: ['ops@example.com'],
  config: { routes: ROUTES },
};

export interface Synthesized {
  readonly app: App;
  readonly stack: KanmonStack;
  readonly template: Template;
  readonly outdir: string;
  cleanup(): void;
}

/** Builds and synthesizes one stack variant into its own temporary cloud assembly. */
export function synth(props: Partial<KanmonStackProps> = {}, stackProps: { env?: KanmonStackProps['env'] } = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'kanmon-cdk-'));
  const env = stackProps.env;
  // A stack with an explicit environment looks up its AZs; answer from context, offline.
  const azContext = env?.account && env.region ? { [`availability-zones:account=${env.account}:region=${env.region}`]: [`${env.region}a`, `${env.region}c`, `${env.region}d`] } : {};
  const app = new App({ context: { ...CDK_CONTEXT, ...azContext }, outdir });
  const stack = new KanmonStack(app, 'Kanmon', { ...BASE_PROPS, ...stackProps, ...props });
  const template = Template.fromStack(stack);
  return { app, stack, template, outdir, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}

/** A fresh app for validation tests (nothing is synthesized). */
export function newApp(): App {
  return new App({ context: CDK_CONTEXT });
}

/** Unacknowledged cdk-nag AwsSolutions findings, as "severity rule: paths". */
export function nagFindings(app: App, stack: Stack): string[] {
  const report = new AwsSolutionsChecks(app).validateScope(stack);
  return report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
}

export function annotationsOf(stack: Stack): { errors: unknown[]; warnings: unknown[] } {
  const annotations = Annotations.fromStack(stack);
  return {
    errors: annotations.findError('*', {} as never).map((m) => m.entry.data),
    warnings: annotations.findWarning('*', {} as never).map((m) => m.entry.data),
  };
}

type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string; UpdateReplacePolicy?: string; DependsOn?: unknown };

export function resources(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

export function only(template: Template, type: string): [string, Resource] {
  const found = resources(template, type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]!;
}

export function containerDefinition(template: Template): Record<string, any> {
  return only(template, 'AWS::ECS::TaskDefinition')[1].Properties.ContainerDefinitions[0];
}

/**
 * A stand-in for a value CloudFormation only knows at deploy time: plain text that satisfies
 * the schema's format checks (table names, ARNs and regions are only checked for shape).
 */
export function placeholderFor(intrinsic: unknown): string {
  const v = intrinsic as Record<string, any>;
  if (v.Ref === 'AWS::Region') return 'ap-northeast-1';
  if (v.Ref === 'AWS::AccountId') return '111111111111';
  if (v.Ref === 'AWS::Partition') return 'aws';
  if (typeof v.Ref === 'string') return `placeholder-${v.Ref}`;
  if (Array.isArray(v['Fn::GetAtt'])) return `placeholder-${v['Fn::GetAtt'][0]}-${v['Fn::GetAtt'][1]}`;
  throw new Error(`unexpected intrinsic in the runtime config: ${JSON.stringify(intrinsic)}`);
}

/** The synthesized KANMON_CONFIG_JSON with deploy-time values replaced by placeholders, parsed. */
export function runtimeConfigOf(template: Template): { text: string; tokens: unknown[]; config: Record<string, any> } {
  const env: { Name: string; Value: unknown }[] = containerDefinition(template).Environment;
  const value = env.find((e) => e.Name === 'KANMON_CONFIG_JSON')?.Value;
  if (value === undefined) throw new Error('no KANMON_CONFIG_JSON in the container environment');
  const tokens: unknown[] = [];
  let text: string;
  if (typeof value === 'string') {
    text = value;
  } else {
    const join = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    text = join[1]
      .map((part) => {
        if (typeof part === 'string') return part;
        tokens.push(part);
        return placeholderFor(part);
      })
      .join(join[0]);
  }
  return { text, tokens, config: JSON.parse(text) };
}
