#!/usr/bin/env node
/**
 * The CDK app: builds stack `Kanmon` from context values, and nothing else.
 *
 *   npx cdk deploy -c domain=gate.example.com -c adminEmail=ops@example.com
 *
 * Optional context: hostedZoneId, hostedZoneName, configFile, certificates
 * (letsencrypt | acm | imported), certificateArn, certificateSecretArn, acmeDirectoryUrl,
 * natGateways, vpcId, cpuArchitecture (x86_64 | arm64), patchSchedule ("cron(…)" | "rate(…)" | off),
 * stackName, nag (false to skip the cdk-nag AwsSolutions check).
 */
import { App, Validations } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { KanmonConfigInput } from '../runtime/config/schema.js';
import { CERTIFICATE_SOURCES, KanmonStack, type CertificateSource } from '../lib/index.js';

const app = new App();

function context(name: string): string | undefined {
  const value: unknown = app.node.tryGetContext(name);
  if (value === undefined || value === null || String(value).trim() === '') return undefined;
  return String(value).trim();
}

function required(name: string, example: string): string {
  const value = context(name);
  if (value === undefined) throw new Error(`context '${name}' is required: add -c ${name}=${example} (see README, "Deploy to AWS")`);
  return value;
}

function integer(name: string): number | undefined {
  const value = context(name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`context '${name}' must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function configFile(): KanmonConfigInput | undefined {
  const path = context('configFile');
  if (path === undefined) return undefined;
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`context 'configFile': cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as KanmonConfigInput;
  } catch (error) {
    throw new Error(`context 'configFile': ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

function patching() {
  const schedule = context('patchSchedule');
  if (schedule === undefined) return undefined;
  if (schedule === 'off') return { enabled: false };
  return { schedule: scheduler.ScheduleExpression.expression(schedule) };
}

const certificates = (context('certificates') ?? 'letsencrypt') as CertificateSource;
if (!CERTIFICATE_SOURCES.includes(certificates)) {
  throw new Error(`context 'certificates' must be one of ${CERTIFICATE_SOURCES.join(', ')}, got ${JSON.stringify(certificates)}`);
}
const architecture = context('cpuArchitecture')?.toLowerCase();
if (architecture !== undefined && architecture !== 'x86_64' && architecture !== 'arm64') {
  throw new Error(`context 'cpuArchitecture' must be x86_64 or arm64, got ${JSON.stringify(architecture)}`);
}

// Without credentials the stack stays environment-agnostic, so `cdk synth` works offline.
const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;

new KanmonStack(app, context('stackName') ?? 'Kanmon', {
  env: account && region ? { account, region } : undefined,
  domain: required('domain', 'gate.example.com'),
  adminEmails: required('adminEmail', 'ops@example.com').split(',').map((e) => e.trim()).filter((e) => e !== ''),
  config: configFile(),
  certificates,
  letsEncrypt: certificates === 'letsencrypt' && context('acmeDirectoryUrl') ? { directoryUrl: context('acmeDirectoryUrl') } : undefined,
  acmCertificateArn: context('certificateArn'),
  certificateSecretArn: context('certificateSecretArn'),
  hostedZoneId: context('hostedZoneId'),
  hostedZoneName: context('hostedZoneName'),
  vpcId: context('vpcId'),
  natGateways: integer('natGateways'),
  cpuArchitecture: architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : undefined,
  patching: patching(),
});

if (context('nag') !== 'false') {
  // cdk-nag's AwsSolutions pack runs at synth; any unacknowledged finding stops synthesis.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
}
