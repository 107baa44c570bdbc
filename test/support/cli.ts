/**
 * Runs one `kanmon …` command through the command table on the given services in this
 * process, as the CLI does, and collects what it prints (kanmon-process.ts runCli runs the
 * real CLI as a child process instead).
 */
import { runCommand } from '../../runtime/cli/commands.js';
import type { KanmonConfig } from '../../runtime/config/schema.js';
import type { Services } from '../../runtime/services/create-services.js';

export interface CliRun {
  readonly code: number;
  readonly lines: string[];
  /** The lines joined with newlines. */
  readonly text: string;
}

export async function runCliInProcess(services: Services, config: KanmonConfig, argv: readonly string[]): Promise<CliRun> {
  const lines: string[] = [];
  const code = await runCommand(argv, services, config, { out: (l) => lines.push(l) });
  return { code, lines, text: lines.join('\n') };
}
