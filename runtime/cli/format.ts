/** Output formatting shared by the CLI commands. */

/** A time as ISO 8601 to the second ("2026-01-02T03:04:05Z"), or "-" when there is none. */
export function iso(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Rows as lines of columns padded to the widest cell, two spaces apart; the first row sets the column count. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
}
