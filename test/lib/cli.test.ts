/**
 * The README's commands, run for real: `npx cdk synth` with context values works offline,
 * without AWS credentials and without Docker (the image is only built by `cdk deploy`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../runtime/config/schema.js';
import { placeholderFor, REPO } from './support.js';

const run = promisify(execFile);

/** No credentials, no instance metadata, and a docker that always fails. */
function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(AWS_|CDK_)/.test(k)) env[k] = v;
  }
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    CDK_DOCKER: '/bin/false',
    CDK_DISABLE_VERSION_CHECK: 'true',
    ...extra,
  };
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'kanmon-cli-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npx cdk synth', () => {
  it('synthesizes stack Kanmon from context values, offline and without Docker', async () => {
    const configFile = join(work, 'kanmon.config.json');
    writeFileSync(configFile, JSON.stringify({ routes: [{ id: 'intranet', upstream: 'http://10.0.1.20:8080' }] }));
    const out = join(work, 'cdk.out');
    await run(
      'npx',
      ['cdk', 'synth', '--quiet', '-o', out, '-c', 'domain=gate.example.com', '-c', 'adminEmail=ops@example.com,security@example.com', '-c', `configFile=${configFile}`],
      { cwd: REPO, env: offlineEnv(), timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
    );

    const template = JSON.parse(readFileSync(join(out, 'Kanmon.template.json'), 'utf8'));
    const types = Object.values(template.Resources as Record<string, { Type: string }>).map((r) => r.Type);
    expect(types).toEqual(expect.arrayContaining(['AWS::ECS::Service', 'AWS::DynamoDB::Table', 'AWS::ElasticLoadBalancingV2::LoadBalancer']));
    const subscriptions = Object.values(template.Resources as Record<string, { Type: string; Properties: { Endpoint: string } }>)
      .filter((r) => r.Type === 'AWS::SNS::Subscription')
      .map((r) => r.Properties.Endpoint);
    expect(subscriptions).toEqual(['ops@example.com', 'security@example.com']);

    // The image is described for `cdk deploy` to build, not built.
    const assets = JSON.parse(readFileSync(join(out, 'Kanmon.assets.json'), 'utf8'));
    const images = Object.values(assets.dockerImages) as { source: { directory: string } }[];
    expect(images).toHaveLength(1);
    expect(existsSync(join(out, images[0]!.source.directory, 'Dockerfile'))).toBe(true);

    // The runtime config in the synthesized template parses.
    const taskDefinition = Object.values(template.Resources as Record<string, { Type: string; Properties: any }>).find((r) => r.Type === 'AWS::ECS::TaskDefinition')!;
    const [delimiter, parts] = taskDefinition.Properties.ContainerDefinitions[0].Environment[0].Value['Fn::Join'];
    const text = (parts as unknown[]).map((p) => (typeof p === 'string' ? p : placeholderFor(p))).join(delimiter);
    const result = validateConfig(JSON.parse(text));
    expect(result.ok ? [] : result.errors).toEqual([]);
  }, 180_000);

  it('explains a missing required context value', async () => {
    const failure = await run('npx', ['tsx', 'bin/kanmon.ts'], {
      cwd: REPO,
      env: offlineEnv({ CDK_CONTEXT_JSON: JSON.stringify({ adminEmail: 'ops@example.com' }), CDK_OUTDIR: join(work, 'missing') }),
      timeout: 60_000,
    }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    expect(failure?.code).not.toBe(0);
    expect(failure?.stderr).toContain("context 'domain' is required: add -c domain=gate.example.com");
  }, 70_000);
});
