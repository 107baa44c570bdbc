/**
 * Reads the list of users for a bulk operation from CSV text (RFC 4180: quoted fields, doubled
 * quotes, CRLF or LF). The user name is the `username` column when the first row is a header
 * naming one, otherwise the first column. Blank lines and lines starting with '#' are skipped;
 * a name listed twice is kept once, in its first place.
 */
export function parseUsernameCsv(text: string): string[] {
  const rows = parseCsvRows(text.replace(/^\uFEFF/, ''));
  if (rows.length === 0) return [];
  const header = rows[0]!.map((cell) => cell.trim().toLowerCase());
  const column = header.indexOf('username');
  const body = column >= 0 ? rows.slice(1) : rows;
  const index = Math.max(column, 0);
  const names: string[] = [];
  for (const row of body) {
    const name = (row[index] ?? '').trim();
    if (name && !names.includes(name)) names.push(name);
  }
  return names;
}

/** Rows of cells; comment and blank lines are left out. */
export function parseCsvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let atLineStart = true;
  let comment = false;
  const endRow = () => {
    row.push(cell);
    if (!comment && !(row.length === 1 && row[0]!.trim() === '')) rows.push(row);
    row = [];
    cell = '';
    atLineStart = true;
    comment = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (atLineStart) {
      atLineStart = false;
      if (ch === '#') comment = true;
    }
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        cell += ch;
      }
      continue;
    }
    if (ch === '"' && cell.trim() === '') {
      cell = '';
      quoted = true;
    } else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRow();
    } else {
      cell += ch;
    }
  }
  if (quoted) throw new SyntaxError('the CSV ends inside a quoted field');
  if (cell !== '' || row.length > 0) endRow();
  return rows;
}

/** One CSV field, quoted when it needs to be (RFC 4180 §2.6-2.7); a leading =, +, - or @ is defused for spreadsheets. */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
