/** The stack sets server.workers from the task's CPU size; a config file's own value wins. */
import { describe, expect, it } from 'vitest';
import { buildRuntimeConfig, checkRuntimeConfig, workersForTaskCpu } from '../../../lib/runtime-config.js';

const parts = {
  domain: 'gate.example.jp',
  tls: { source: 'offloaded' } as const,
  tableName: 'kanmon',
  region: 'ap-northeast-1',
  keyArn: 'arn:aws:kms:ap-northeast-1:111111111111:key/00000000-0000-0000-0000-000000000000',
  topicArn: 'arn:aws:sns:ap-northeast-1:111111111111:kanmon',
  proxyNetworks: ['10.0.0.0/16'],
};

describe('server.workers in the container', () => {
  it('is one process per whole vCPU of the task, at least one', () => {
    expect([256, 512, 1024, 2048, 4096, 8192].map(workersForTaskCpu)).toEqual([1, 1, 1, 2, 4, 8]);
  });

  it('goes into the runtime config, which the runtime accepts', () => {
    const config = buildRuntimeConfig({ ...parts, workers: 2 });
    expect(config.server?.workers).toBe(2);
    expect(checkRuntimeConfig(config)).toEqual([]);
  });

  it("yields to the operator's config file", () => {
    expect(buildRuntimeConfig({ ...parts, workers: 2, base: { server: { workers: 'auto' } } }).server?.workers).toBe('auto');
    expect(buildRuntimeConfig({ ...parts, workers: 4, base: { server: { workers: 1 } } }).server?.workers).toBe(1);
  });
});
