/** Who is asking, as seen by the listener; carried into audit events and sessions. */
export interface RequestContext {
  readonly ip: string;
  readonly userAgent: string;
  readonly requestId?: string;
}

/** The context of commands run from the CLI. */
export const CLI_CONTEXT: RequestContext = { ip: 'cli', userAgent: 'kanmon-cli' };
