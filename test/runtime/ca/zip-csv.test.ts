import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { csvField, parseCsvRows, parseUsernameCsv } from '../../../runtime/ca/csv.js';
import { buildZip, crc32 } from '../../../runtime/ca/zip.js';
import { run } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'kanmon-zip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('buildZip', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array())).toBe(0);
  });

  it('writes an archive that unzip tests, lists and extracts byte for byte, with UTF-8 names and mode 0600', async () => {
    const binary = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff);
    const path = join(dir, 'out.zip');
    writeFileSync(path, buildZip([
      { name: 'hanako-laptop.p12', data: binary },
      { name: '山田-phone.p12', data: new Uint8Array([0, 1, 2]) },
      { name: 'index.csv', data: new TextEncoder().encode('a,b\r\n') },
      { name: 'empty', data: new Uint8Array() },
    ], new Date(Date.UTC(2026, 10, 21, 10, 30, 44))));

    const test = await run('unzip', ['-t', path]);
    expect(test.stdout).toContain('No errors detected');
    const list = await run('unzip', ['-Z', '-l', path]);
    expect(list.stdout).toMatch(/-rw-------.*hanako-laptop\.p12/);
    expect(list.stdout).toContain('山田-phone.p12');
    expect(list.stdout).toMatch(/stor/);
    await run('unzip', ['-q', path, '-d', join(dir, 'x')]);
    expect(readFileSync(join(dir, 'x', 'hanako-laptop.p12')).equals(Buffer.from(binary))).toBe(true);
    expect(readFileSync(join(dir, 'x', '山田-phone.p12'))).toEqual(Buffer.from([0, 1, 2]));
    expect(statSync(join(dir, 'x', 'hanako-laptop.p12')).mode & 0o777).toBe(0o600);
  });

  it('refuses duplicate names and paths that climb out', () => {
    expect(() => buildZip([{ name: 'a', data: new Uint8Array() }, { name: 'a', data: new Uint8Array() }])).toThrow(/duplicate/);
    expect(() => buildZip([{ name: '../evil', data: new Uint8Array() }])).toThrow(/relative/);
    expect(() => buildZip([{ name: '/etc/passwd', data: new Uint8Array() }])).toThrow(/relative/);
  });
});

describe('CSV of users', () => {
  it('takes the first column without a header', () => {
    expect(parseUsernameCsv('alice\nbob,Bob Smith\n\n# a comment\ncarol\r\nalice\n')).toEqual(['alice', 'bob', 'carol']);
  });

  it('takes the username column of a header, quoted fields and a BOM included', () => {
    const text = '\uFEFFdisplay name,Username,group\r\n"Yamada, Hanako",hanako,staff\r\n"Ben ""B"" Smith",ben,ops\r\n';
    expect(parseUsernameCsv(text)).toEqual(['hanako', 'ben']);
  });

  it('reads quoted newlines and refuses an unterminated quote', () => {
    expect(parseCsvRows('"a\nb",c\n')).toEqual([['a\nb', 'c']]);
    expect(() => parseCsvRows('"open')).toThrow(/quoted/);
  });

  it('quotes fields that need it and defuses spreadsheet formulas', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('=cmd()')).toBe("'=cmd()");
  });
});
