import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import QRCode from 'qrcode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runtime/cli/args.js';
import { runCommand } from '../../../runtime/cli/commands.js';
import { letterFileName } from '../../../runtime/cli/enrollment-commands.js';
import { renderEnrollmentLetter } from '../../../runtime/letters/enrollment-letter.js';
import { enrollmentTokenId } from '../../../runtime/services/enrollment.js';
import { KanmonHarness } from '../../support/kanmon-harness.js';

let h: KanmonHarness;
let out: string;

beforeAll(async () => {
  h = await KanmonHarness.start();
  await h.app.services.users.addUser({ username: 'aiko', displayName: '青木 愛子' });
  await h.app.services.users.addUser({ username: 'ben', displayName: 'Ben Smith' });
  out = mkdtempSync(join(tmpdir(), 'kanmon-letters-'));
});
afterAll(async () => {
  await h?.close();
  rmSync(out, { recursive: true, force: true });
});

async function kanmon(...argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const code = await runCommand(argv, h.app.services, h.app.config, { out: (l) => lines.push(l) });
  expect(code).toBe(0);
  return lines;
}

function tokenOf(url: string): string {
  return new URL(url).searchParams.get('token')!;
}

describe('kanmon enroll-link', () => {
  it('prints a link with the expiry asked for, and no code by default', async () => {
    const lines = await kanmon('enroll-link', 'aiko', '--expires', '48h');
    expect(lines[0]).toMatch(/^https:\/\/localhost:\d+\/\.kanmon\/enroll\?token=[A-Za-z0-9_-]{43}$/);
    const token = await h.app.store.enrollmentTokens.get(enrollmentTokenId(tokenOf(lines[0]!)));
    expect(token!.expiresAt - token!.createdAt).toBe(48 * 3600_000);
    expect(token!.codeHash).toBeUndefined();
    expect(lines.join('\n')).not.toContain('one-time code');
  });

  it('with --code, prints the code apart from the link, and the link demands it', async () => {
    const lines = await kanmon('enroll-link', 'aiko', '--code');
    const codeLine = lines.find((l) => l.startsWith('one-time code: '))!;
    const code = codeLine.slice('one-time code: '.length).replace(' ', '');
    expect(code).toMatch(/^[0-9]{8}$/);
    expect(lines[0]).not.toContain(code);
    const token = tokenOf(lines[0]!);
    expect((await h.post('/.kanmon/api/enroll/options', { token })).json().error).toBe('code-required');
    expect((await h.post('/.kanmon/api/enroll/options', { token, code })).status).toBe(200);
  });
});

describe('kanmon enroll-letter', () => {
  it('writes one self-contained, printable letter per user, with the link as text and as a QR code, in both languages', async () => {
    const dir = join(out, 'plain');
    const lines = await kanmon('enroll-letter', 'aiko', 'ben', '--out', dir, '--expires', '7d');
    expect(readdirSync(dir).sort()).toEqual(['aiko.html', 'ben.html']);
    expect(lines.filter((l) => l.startsWith('wrote '))).toHaveLength(2);
    expect(lines.join('\n')).not.toContain('one-time codes');
    // The letters hold live links: only their owner may read them.
    expect(statSync(join(dir, 'aiko.html')).mode & 0o777).toBe(0o600);

    const letter = readFileSync(join(dir, 'aiko.html'), 'utf8');
    const url = /<p class="link" id="letter-link">([^<]+)<\/p>/.exec(letter)![1]!.replace(/&amp;/g, '&');
    expect(url).toMatch(/^https:\/\/localhost:\d+\/\.kanmon\/enroll\?token=/);
    const token = await h.app.store.enrollmentTokens.get(enrollmentTokenId(tokenOf(url)));
    expect(token!.expiresAt - token!.createdAt).toBe(7 * 86400_000);
    expect(letter).toContain('青木 愛子 (aiko)');
    // The QR code is the link, drawn inline.
    const qr = /<svg[^>]*class="qr"[\s\S]*?<\/svg>/.exec(letter)![0];
    const expectedPath = /<path stroke="#000000" d="([^"]+)"/.exec(await QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 }))![1];
    expect(qr).toContain(expectedPath);
    // Both languages, the expiry, a print stylesheet.
    expect(letter).toContain('パスキー登録のご案内');
    expect(letter).toContain('Set up your passkey');
    expect(letter).toContain('有効期限 / Expires:');
    expect(letter).toContain(`datetime="${new Date(token!.expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z')}"`);
    expect(letter).toMatch(/@page \{ size: A4/);
    expect(letter).toContain('@media print');
  });

  it('loads nothing from anywhere: no external URL but the link itself, no script, a CSP that forbids fetches', async () => {
    const dir = join(out, 'offline');
    await kanmon('enroll-letter', 'ben', '--out', dir);
    const letter = readFileSync(join(dir, 'ben.html'), 'utf8');
    const url = /<p class="link" id="letter-link">([^<]+)<\/p>/.exec(letter)![1]!;
    const urls = letter.match(/https?:\/\/[^\s"'<>)]+/g) ?? [];
    expect(new Set(urls)).toEqual(new Set([url]));
    expect(letter).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    expect(letter).not.toMatch(/\ssrc=/i);
    expect(letter).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
  });

  it('with --code, says the code comes separately and prints the codes to stdout, never into the letters', async () => {
    const dir = join(out, 'codes');
    const lines = await kanmon('enroll-letter', 'aiko', 'ben', '--out', dir, '--code');
    const codeLines = lines.slice(lines.findIndex((l) => l.startsWith('one-time codes')) + 1);
    expect(codeLines.map((l) => l.trim().split(/\s+/)[0])).toEqual(['aiko', 'ben']);
    for (const [username, ...digits] of codeLines.map((l) => l.trim().split(/\s+/))) {
      const code = digits.join('');
      expect(code).toMatch(/^[0-9]{8}$/);
      const letter = readFileSync(join(dir, `${username}.html`), 'utf8');
      expect(letter).not.toContain(code);
      expect(letter).not.toContain(digits.join(' '));
      expect(letter).toContain('id="letter-code-note"');
      expect(letter).toContain('8 桁のワンタイムコード');
      expect(letter).toContain('8-digit one-time code');
      const url = /<p class="link" id="letter-link">([^<]+)<\/p>/.exec(letter)![1]!;
      expect((await h.post('/.kanmon/api/enroll/options', { token: tokenOf(url), code })).status).toBe(200);
    }
  });

  it('checks every name before issuing any link', async () => {
    const dir = join(out, 'typo');
    const before = (await h.app.services.audit.tail({ limit: 200 })).filter((e) => e.type === 'enroll.link').length;
    await expect(runCommand(['enroll-letter', 'aiko', 'nobody', '--out', dir], h.app.services, h.app.config, { out: () => undefined })).rejects.toThrow(/nobody/);
    const after = (await h.app.services.audit.tail({ limit: 200 })).filter((e) => e.type === 'enroll.link').length;
    expect(after).toBe(before);
    await expect(runCommand(['enroll-letter', '--out', dir], h.app.services, h.app.config, { out: () => undefined })).rejects.toBeInstanceOf(UsageError);
  });

  it('makes safe file names of any username', () => {
    expect(letterFileName('aiko')).toBe('aiko.html');
    expect(letterFileName('../../etc/passwd')).toBe('__.._etc_passwd.html');
    expect(letterFileName('..')).toBe('_.html');
    expect(letterFileName('山田')).toBe('山田.html');
    expect(letterFileName('a/b\\c:d')).toBe('a_b_c_d.html');
  });

  it('escapes what it prints: a display name cannot add markup to the letter', async () => {
    const letter = await renderEnrollmentLetter({
      username: 'mallory',
      displayName: '<img src=https://evil.example/x>',
      url: 'https://gate.example/.kanmon/enroll?token=abc&x="y"',
      expiresAt: Date.UTC(2030, 0, 1),
      codeSeparately: false,
      organisation: 'Kanmon',
      timeZone: 'Asia/Tokyo',
    });
    expect(letter).not.toContain('<img');
    expect(letter).toContain('&lt;img src=https://evil.example/x&gt;');
    expect(letter).toContain('token=abc&amp;x=&quot;y&quot;');
    expect(letter).toContain('2030年1月1日');
  });
});
