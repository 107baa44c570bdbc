import { describe, expect, it } from 'vitest';
import { cgroupCpuLimit, resolveWorkerCount } from '../../../runtime/cluster/worker-count.js';

const files = (entries: Record<string, string>) => (path: string) => {
  const text = entries[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  return text;
};

describe('cgroupCpuLimit', () => {
  it('reads a cgroup v2 quota as CPUs', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' }))).toBe(0.5);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '200000 100000\n' }))).toBe(2);
  });

  it('sees no limit in "max" (v2), -1 (v1), or when no cgroup file exists', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
  });

  it('reads a cgroup v1 quota', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '150000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBe(1.5);
  });

  it('answers on this machine without throwing', () => {
    const limit = cgroupCpuLimit();
    expect(limit === undefined || limit > 0).toBe(true);
  });
});

describe('resolveWorkerCount', () => {
  it('takes a number as it is', () => {
    expect(resolveWorkerCount(3, { cpus: 16, cpuLimit: 0.5 })).toBe(3);
  });

  it('"auto" is one per CPU, capped by the quota rounded up, never below one', () => {
    expect(resolveWorkerCount('auto', { cpus: 8, cpuLimit: undefined })).toBe(8);
    expect(resolveWorkerCount('auto', { cpus: 8, cpuLimit: 2 })).toBe(2);
    expect(resolveWorkerCount('auto', { cpus: 8, cpuLimit: 1.5 })).toBe(2);
    expect(resolveWorkerCount('auto', { cpus: 2, cpuLimit: 0.25 })).toBe(1);
    expect(resolveWorkerCount('auto', { cpus: 2, cpuLimit: 4 })).toBe(2);
    expect(resolveWorkerCount('auto', { cpus: 1 })).toBeGreaterThanOrEqual(1);
  });
});
