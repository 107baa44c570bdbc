/**
 * Regular-expression replacement with a time limit. Patterns come from config and are
 * checked for the classic exponential shapes at start, but no static check catches every
 * pattern that backtracks badly on some input; running the replacement in a vm context with
 * a timeout means the worst case is a logged rule error and an unchanged body, never a
 * stuck event loop.
 */
import vm from 'node:vm';

/** Thrown when a replacement ran past its time limit. */
export class RegexTimeoutError extends Error {
  constructor(ms: number) {
    super(`regular expression ran longer than ${ms} ms and was abandoned`);
    this.name = 'RegexTimeoutError';
  }
}

const context = vm.createContext(Object.create(null) as object);
const script = new vm.Script('input.replace(pattern, replacement)');

/** `input.replace(pattern, replacement)`, abandoned after `timeoutMs`. `pattern` must be global. */
export function boundedReplace(input: string, pattern: RegExp, replacement: string, timeoutMs: number): string {
  const vmContext = context as { input?: string; pattern?: RegExp; replacement?: string };
  vmContext.input = input;
  vmContext.pattern = pattern;
  vmContext.replacement = replacement;
  try {
    pattern.lastIndex = 0;
    return script.runInContext(context, { timeout: timeoutMs }) as string;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new RegexTimeoutError(timeoutMs);
    throw err;
  } finally {
    vmContext.input = undefined;
    vmContext.pattern = undefined;
    vmContext.replacement = undefined;
  }
}
