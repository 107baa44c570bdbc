import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * The CPU limit of this process's cgroup, in CPUs (e.g. 0.5 for a quota of half a core), or
 * undefined when there is none. Containers often see every core of the host while their
 * quota allows far fewer; Node's availableParallelism() does not look at the quota.
 */
export function cgroupCpuLimit(read: (path: string) => string = (path) => readFileSync(path, 'utf8')): number | undefined {
  // cgroup v2: "<quota> <period>" or "max <period>".
  const v2 = tryRead(read, '/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return limit(quota, period);
  }
  // cgroup v1: the quota is -1 when unlimited.
  const quota = tryRead(read, '/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = tryRead(read, '/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  return quota !== undefined && period !== undefined ? limit(quota.trim(), period.trim()) : undefined;
}

function limit(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && q > 0 && Number.isFinite(p) && p > 0 ? q / p : undefined;
}

function tryRead(read: (path: string) => string, path: string): string | undefined {
  try {
    return read(path);
  } catch {
    return undefined;
  }
}

/**
 * How many processes serve the listener for a `server.workers` setting. "auto" is one per CPU
 * the process may actually use: the CPUs it may run on, capped by the cgroup quota rounded up
 * (half a core still gets one worker; 1.5 cores get two).
 */
export function resolveWorkerCount(
  setting: number | 'auto',
  machine: { readonly cpus?: number; readonly cpuLimit?: number | undefined } = {},
): number {
  if (setting !== 'auto') return setting;
  const cpus = machine.cpus ?? availableParallelism();
  const quota = 'cpuLimit' in machine ? machine.cpuLimit : cgroupCpuLimit();
  return Math.max(1, Math.min(cpus, quota === undefined ? cpus : Math.ceil(quota)));
}
