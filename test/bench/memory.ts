/**
 * The proxy's memory under load: the resident set of its whole process tree, sampled while a
 * measurement runs, so a case's figure is what serving that load actually held (not the
 * start-up peak, and not one worker of several).
 */
import { readFileSync } from 'node:fs';
import { processTree } from './cpu-usage.js';

const SAMPLE_EVERY_MS = 250;

/** Sum of VmRSS over `pid` and its descendants, in bytes; undefined once it is gone. */
export function treeRssBytes(pid: number): number | undefined {
  let kib = 0;
  let seen = false;
  for (const p of processTree(pid)) {
    try {
      const line = readFileSync(`/proc/${p}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
      if (!line) continue;
      kib += Number(line.replace(/\D+/g, ''));
      seen = true;
    } catch {
      // Exited between the listing and the read.
    }
  }
  return seen ? kib * 1024 : undefined;
}

/** Runs `measure` while sampling the tree's RSS; resolves to its result and the largest sample. */
export async function withPeakRss<T>(pid: number | undefined, measure: () => Promise<T>): Promise<{ result: T; peakRssBytes: number | undefined }> {
  if (pid === undefined) return { result: await measure(), peakRssBytes: undefined };
  let peak = treeRssBytes(pid);
  const timer = setInterval(() => {
    const now = treeRssBytes(pid);
    if (now !== undefined && (peak === undefined || now > peak)) peak = now;
  }, SAMPLE_EVERY_MS);
  try {
    const result = await measure();
    const last = treeRssBytes(pid);
    if (last !== undefined && (peak === undefined || last > peak)) peak = last;
    return { result, peakRssBytes: peak };
  } finally {
    clearInterval(timer);
  }
}
