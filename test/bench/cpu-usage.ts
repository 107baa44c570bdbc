/**
 * How much of the proxy's CPU went to other work during a measurement. The bench pins the
 * proxy to one core, but nothing stops unrelated processes (a build, another test run) from
 * landing there; this reports that share so a skewed row can be seen as skewed.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface CpuSample {
  readonly busy: number;
  readonly total: number;
  readonly processTicks: number;
}

/** Jiffies of one CPU from /proc/stat plus the CPU time of a process tree, at this instant. */
export function sampleCpu(cpu: number, pid: number | undefined): CpuSample | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${cpu} `));
    if (!line) return undefined;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total, processTicks: pid ? treeTicks(pid) : 0 };
  } catch {
    return undefined;
  }
}

/** Percent of the CPU's time spent busy on something other than the process tree. */
export function foreignPercent(before: CpuSample | undefined, after: CpuSample | undefined): number | undefined {
  if (!before || !after || after.total <= before.total) return undefined;
  const foreign = after.busy - before.busy - (after.processTicks - before.processTicks);
  return Math.max(0, (100 * foreign) / (after.total - before.total));
}

/** utime + stime of a process and its descendants (nginx's master and its worker), in clock ticks. */
function treeTicks(pid: number): number {
  let ticks = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(rest[11]) + Number(rest[12]);
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) ticks += treeTicks(Number(child));
    }
  } catch {
    // The process (or a child) is gone: count what could be read.
  }
  return ticks;
}
