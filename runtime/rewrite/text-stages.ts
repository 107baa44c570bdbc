/**
 * Body text rewriting as a chain of stages, each fed decoded text in pieces and handing on
 * what it has finished with. Literal replacements stream (a stage holds back only the few
 * characters that could start a match); regex replacements need the whole text, so a body
 * with one is buffered (up to the route's cap) and the regexes run once, time-limited.
 */
import { boundedReplace } from './bounded-replace.js';

export interface TextStage {
  /** Takes the next piece of text; returns the text ready to go on (possibly empty). */
  push(text: string): string;
  /** The input has ended: returns everything still held. */
  end(): string;
}

/** A rule failed on this body; carries the rule's id for the log. */
export class RuleError extends Error {
  constructor(
    readonly ruleId: string,
    cause: Error,
  ) {
    super(`rewrite rule ${ruleId} failed: ${cause.message}`, { cause });
    this.name = 'RuleError';
  }
}

export function literalStage(find: string, replacement: string): TextStage {
  let held = '';
  const keep = find.length - 1;
  return {
    push(text) {
      const buf = held + text;
      let out = '';
      let from = 0;
      let at = buf.indexOf(find);
      while (at >= 0) {
        out += buf.slice(from, at) + replacement;
        from = at + find.length;
        at = buf.indexOf(find, from);
      }
      const cut = Math.max(from, buf.length - keep);
      out += buf.slice(from, cut);
      held = buf.slice(cut);
      return out;
    },
    end() {
      const rest = held;
      held = '';
      return rest;
    },
  };
}

export function regexStage(ruleId: string, pattern: RegExp, replacement: string, timeoutMs: number): TextStage {
  let parts: string[] = [];
  return {
    push(text) {
      parts.push(text);
      return '';
    },
    end() {
      const whole = parts.join('');
      parts = [];
      try {
        return boundedReplace(whole, pattern, replacement, timeoutMs);
      } catch (err) {
        throw new RuleError(ruleId, err as Error);
      }
    },
  };
}

/** Stages run in order: what one hands on is the next one's input. */
export function chainStages(stages: readonly TextStage[]): TextStage {
  if (stages.length === 1) return stages[0]!;
  return {
    push(text) {
      let t = text;
      for (const stage of stages) {
        if (t === '') break;
        t = stage.push(t);
      }
      return t;
    },
    end() {
      let carried = '';
      for (const stage of stages) {
        const pushed = carried === '' ? '' : stage.push(carried);
        carried = pushed + stage.end();
      }
      return carried;
    },
  };
}
