/**
 * The body transform: upstream bytes → decompressed (gzip, deflate, br) → decoded in the
 * body's charset → text stages → encoded in the same charset → compressed as before.
 *
 * Streams unless a stage needs the whole text (a regex rule): then the decoded body is held up
 * to `maxBufferBytes`, and beyond that the original bytes pass unchanged with a warning. Until
 * the first rewritten byte has left, the original bytes are kept too, so any failure in that
 * window (corrupt compression, bytes that are not the declared charset, a regex timing out)
 * sends the body exactly as the upstream wrote it, with the rule's id in the log. A failure
 * after output has begun ends the rewriting: the rest passes unchanged where the format
 * allows, and the failure is logged.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { canEncode, canonicalCharset, declaredCharset, encoderFor, type Encode } from './charset.js';
import { RuleError, type TextStage } from './text-stages.js';

export type ContentCoding = 'identity' | 'gzip' | 'deflate' | 'br';

export interface BodyPlan {
  readonly coding: ContentCoding;
  readonly kind: 'html' | 'css' | 'other';
  /** The Content-Type's charset parameter, if any. */
  readonly charset: string | undefined;
  /** Hold the whole body before writing anything (a stage needs it all). */
  readonly buffered: boolean;
  readonly maxBufferBytes: number;
  /** Builds this body's stages. */
  readonly stages: () => TextStage;
  readonly onError: (ruleId: string, err: Error) => void;
  readonly onWarning: (ruleId: string, message: string) => void;
}

/** Bytes looked at for a `<meta charset>` or `@charset` before rewriting starts (HTML's prescan length). */
const SNIFF_BYTES = 1024;
const BODY_RULE = 'body';

type State = 'sniff' | 'text' | 'bytes' | 'raw' | 'dead';

export class BodyRewriteStream extends Transform {
  private state: State = 'sniff';
  private inflater: zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress | undefined;
  private deflater: zlib.Gzip | zlib.Deflate | zlib.DeflateRaw | zlib.BrotliCompress | undefined;
  /** The original bytes, while a fallback to them is still possible. */
  private rawKept: Buffer[] | undefined = [];
  private rawBytes = 0;
  private plainBytes = 0;
  private sniffed: Buffer[] = [];
  private sniffedBytes = 0;
  private decoder: TextDecoder | undefined;
  private encode: Encode | undefined;
  private stage: TextStage | undefined;
  /** Rewritten output held back in buffered mode. */
  private outKept: Buffer[] = [];
  private pendingWrite: TransformCallback | undefined;
  private pendingFlush: TransformCallback | undefined;

  constructor(private readonly plan: BodyPlan) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.state === 'raw') {
      callback(null, chunk);
      return;
    }
    if (this.state === 'dead') {
      callback();
      return;
    }
    if (this.rawKept) {
      this.rawKept.push(chunk);
      this.rawBytes += chunk.length;
      if (this.plan.buffered && this.rawBytes > this.plan.maxBufferBytes) {
        this.tooLarge();
        callback();
        return;
      }
    }
    if (this.plan.coding === 'identity') {
      this.onPlain(chunk);
      callback();
      return;
    }
    this.inflater ??= this.openInflater(chunk);
    this.pendingWrite = callback;
    this.inflater.write(chunk, () => this.releaseWrite());
  }

  override _flush(callback: TransformCallback): void {
    if (this.state === 'raw' || this.state === 'dead') {
      if (this.state === 'dead') this.endOutput(callback);
      else callback();
      return;
    }
    this.pendingFlush = callback;
    if (this.inflater) {
      this.inflater.once('end', () => this.finishPlain());
      this.inflater.end();
    } else this.finishPlain();
  }

  private releaseWrite(): void {
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.();
  }

  private openInflater(first: Buffer): NonNullable<BodyRewriteStream['inflater']> {
    let inflater: NonNullable<BodyRewriteStream['inflater']>;
    if (this.plan.coding === 'gzip') inflater = zlib.createGunzip();
    else if (this.plan.coding === 'br') inflater = zlib.createBrotliDecompress();
    else {
      // HTTP "deflate" is the zlib format (RFC 9110 §8.4.1.2), but some servers send raw
      // deflate; the zlib header (CM 8, header checksum) tells them apart.
      const zlibWrapped = first.length < 2 || ((first[0]! & 0x0f) === 8 && ((first[0]! << 8) | first[1]!) % 31 === 0);
      inflater = zlibWrapped ? zlib.createInflate() : zlib.createInflateRaw();
      this.deflater = zlibWrapped ? zlib.createDeflate() : zlib.createDeflateRaw();
    }
    if (this.plan.coding === 'gzip') this.deflater = zlib.createGzip();
    else if (this.plan.coding === 'br') {
      this.deflater = zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
    }
    this.deflater!.on('data', (d: Buffer) => this.emitOut(d));
    inflater.on('data', (d: Buffer) => this.onPlain(d));
    inflater.on('error', (err) => this.onInflateError(err));
    return inflater;
  }

  private onInflateError(err: Error): void {
    this.inflater?.removeAllListeners('data');
    if (this.fallBack()) {
      this.plan.onError(BODY_RULE, new Error(`the ${this.plan.coding} body could not be decompressed, sent unchanged: ${err.message}`));
      return;
    }
    this.plan.onError(BODY_RULE, new Error(`the ${this.plan.coding} body could not be decompressed after output began; the rest was dropped: ${err.message}`));
    this.state = 'dead';
    this.releaseWrite();
    const cb = this.pendingFlush;
    this.pendingFlush = undefined;
    if (cb) this.endOutput(cb);
  }

  private onPlain(buf: Buffer): void {
    if (this.state === 'raw' || this.state === 'dead') return;
    this.plainBytes += buf.length;
    if (this.plan.buffered && this.plainBytes > this.plan.maxBufferBytes && this.rawKept) {
      this.tooLarge();
      return;
    }
    if (this.state === 'sniff') {
      this.sniffed.push(buf);
      this.sniffedBytes += buf.length;
      if (this.sniffedBytes >= SNIFF_BYTES) this.begin();
      return;
    }
    this.rewritePlain(buf);
  }

  /** Decides the charset from the header, a BOM or the body's own declaration, then feeds what was sniffed. */
  private begin(): void {
    const head = Buffer.concat(this.sniffed);
    this.sniffed = [];
    const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
    const label = bom ? 'utf-8' : (this.plan.charset ?? declaredCharset(head, this.plan.kind) ?? 'utf-8');
    const charset = canonicalCharset(label);
    if (charset === undefined || !canEncode(charset)) {
      this.plan.onWarning(BODY_RULE, `charset ${JSON.stringify(label)} cannot be re-encoded; the body passes unchanged`);
      if (!this.fallBack()) this.state = 'bytes';
      return;
    }
    this.decoder = new TextDecoder(charset, { fatal: true, ignoreBOM: true });
    this.encode = encoderFor(charset, this.plan.kind === 'html', (n) =>
      this.plan.onWarning(BODY_RULE, `${n} replacement character(s) do not exist in ${charset}; written as ${this.plan.kind === 'html' ? 'character references' : "'?'"}`),
    );
    this.stage = this.plan.stages();
    this.state = 'text';
    if (head.length) this.rewritePlain(head);
  }

  private rewritePlain(buf: Buffer): void {
    if (this.state === 'bytes') {
      this.out(buf);
      return;
    }
    let text: string;
    try {
      text = this.decoder!.decode(buf, { stream: true });
    } catch (err) {
      this.notCharset(err as Error, buf);
      return;
    }
    const ready = this.stage!.push(text);
    if (ready) this.out(this.encode!(ready));
  }

  /** Bytes that are not the declared charset: rewriting them would mangle them. */
  private notCharset(err: Error, buf: Buffer | undefined): void {
    const charset = this.decoder!.encoding;
    if (this.fallBack()) {
      this.plan.onError(BODY_RULE, new Error(`the body is not valid ${charset}; sent unchanged (${err.message})`));
      return;
    }
    this.plan.onError(BODY_RULE, new Error(`the body is not valid ${charset} past the first rewritten bytes; the rest passes unchanged (${err.message})`));
    try {
      const rest = this.stage!.end();
      if (rest) this.out(this.encode!(rest));
    } catch (stageErr) {
      this.reportStageError(stageErr as Error);
    }
    this.state = 'bytes';
    if (buf) this.out(buf);
  }

  private finishPlain(): void {
    if (this.state === 'sniff') this.begin();
    if (this.state === 'text') {
      let rest = '';
      let decoded = true;
      try {
        rest = this.decoder!.decode();
      } catch (err) {
        decoded = false;
        this.notCharset(err as Error, undefined);
      }
      if (decoded && this.state === 'text') {
        try {
          const text = (rest ? this.stage!.push(rest) : '') + this.stage!.end();
          if (text) this.out(this.encode!(text));
        } catch (err) {
          if (this.fallBack()) this.reportStageError(err as Error, true);
          else this.reportStageError(err as Error);
        }
      }
    }
    const cb = this.pendingFlush;
    this.pendingFlush = undefined;
    if (!cb) return;
    if (this.state === 'raw') cb();
    else this.endOutput(cb);
  }

  private reportStageError(err: Error, unchanged = false): void {
    const ruleId = err instanceof RuleError ? err.ruleId : BODY_RULE;
    const cause = err instanceof RuleError && err.cause instanceof Error ? err.cause : err;
    this.plan.onError(ruleId, new Error(`${cause.message}${unchanged ? '; the body was sent unchanged' : ''}`, { cause }));
  }

  private endOutput(cb: TransformCallback): void {
    const done = () => {
      for (const b of this.outKept) this.push(b);
      this.outKept = [];
      cb();
    };
    if (this.deflater) {
      this.deflater.once('end', done);
      this.deflater.end();
    } else done();
  }

  private out(buf: Buffer): void {
    if (this.deflater) this.deflater.write(buf);
    else this.emitOut(buf);
  }

  private emitOut(buf: Buffer): void {
    if (this.state === 'raw') return;
    if (this.plan.buffered) {
      this.outKept.push(buf);
      return;
    }
    this.rawKept = undefined;
    this.push(buf);
  }

  private tooLarge(): void {
    this.plan.onWarning(BODY_RULE, `body larger than maxBufferBytes (${this.plan.maxBufferBytes}); passed unchanged`);
    this.fallBack();
  }

  /** Sends the original bytes and passes the rest through untouched, if nothing rewritten has left yet. */
  private fallBack(): boolean {
    const kept = this.rawKept;
    if (!kept) return false;
    this.state = 'raw';
    this.rawKept = undefined;
    this.outKept = [];
    this.sniffed = [];
    this.inflater?.removeAllListeners('data');
    this.deflater?.removeAllListeners('data');
    this.deflater?.destroy();
    if (this.inflater) {
      // Keep an error listener: a destroyed stream may still report the write it was given.
      this.inflater.on('error', () => undefined);
      this.inflater.destroy();
      this.inflater = undefined;
    }
    this.deflater = undefined;
    for (const b of kept) this.push(b);
    // The decompressor was destroyed mid-write or mid-flush: its callbacks will not come.
    this.releaseWrite();
    const flush = this.pendingFlush;
    this.pendingFlush = undefined;
    flush?.();
    return true;
  }
}
