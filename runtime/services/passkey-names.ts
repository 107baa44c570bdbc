/** A user-chosen passkey label: trimmed, control characters removed, at most 64 characters. */
export function cleanPasskeyName(input: unknown, fallback = 'Passkey'): string {
  if (typeof input !== 'string') return fallback;
  const name = input.normalize('NFC').replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 64);
  return name || fallback;
}
