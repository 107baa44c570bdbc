/**
 * How much of each pinned core went to other work during a measurement. The bench pins the
 * proxy to one core and the load to the other, but nothing stops unrelated processes (a
 * build, another test run) from landing there; this reports that share so a skewed row can
 * be seen as skewed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export interface CpuSample {
  readonly busy: number;
  readonly total: number;
  /** CPU time of the bench's own processes on this core, in clock ticks. */
  readonly ownTicks: number;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux in practice). */
export const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Jiffies of one CPU from /proc/stat, and the CPU time of the bench's own processes on it:
 * the process trees in `pids`, plus (with `reapedChildren`) this process's finished children,
 * which is where a completed wrk run's time ends up.
 */
export function sampleCpu(cpu: number | readonly number[], pids: readonly number[], reapedChildren = false): CpuSample | undefined {
  try {
    const stat = readFileSync('/proc/stat', 'utf8').split('\n');
    let idle = 0;
    let total = 0;
    // Several CPUs (a proxy spread over them): their jiffies summed.
    for (const c of typeof cpu === 'number' ? [cpu] : cpu) {
      const line = stat.find((l) => l.startsWith(`cpu${c} `));
      if (!line) return undefined;
      const f = line.trim().split(/\s+/).slice(1).map(Number);
      idle += f[3]! + (f[4] ?? 0);
      total += f.slice(0, 8).reduce((a, b) => a + b, 0);
    }
    let ownTicks = pids.reduce((sum, pid) => sum + treeTicks(pid), 0);
    if (reapedChildren) ownTicks += statFields(process.pid).slice(13, 15).reduce((a, b) => a + Number(b), 0);
    return { busy: total - idle, total, ownTicks };
  } catch {
    return undefined;
  }
}

/** Percent of the CPU's time spent busy on something other than the bench's own processes. */
export function foreignPercent(before: CpuSample | undefined, after: CpuSample | undefined): number | undefined {
  if (!before || !after || after.total <= before.total) return undefined;
  const foreign = after.busy - before.busy - (after.ownTicks - before.ownTicks);
  return Math.max(0, (100 * foreign) / (after.total - before.total));
}

/** The fields of /proc/<pid>/stat after the parenthesised command name (state is field 0). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** A process and all its descendants (nginx's master and worker; Kanmon's primary and workers). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) pids.push(...processTree(Number(child)));
    }
  } catch {
    // The process is gone: what could be read.
  }
  return pids;
}

/** utime + stime of a process and its descendants, in clock ticks. */
function treeTicks(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const rest = statFields(p);
      // utime and stime (proc(5) fields 14 and 15).
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      // The process (or a child) is gone: count what could be read.
    }
  }
  return ticks;
}
