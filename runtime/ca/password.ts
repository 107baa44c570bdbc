import { randomInt } from 'node:crypto';

/**
 * Letters and digits that cannot be mistaken for one another when read off a sheet or typed on
 * a phone: no 0/o, 1/l/i. 31 symbols, so each carries log2(31) ≈ 4.95 bits.
 */
const ALPHABET = '23456789abcdefghjkmnpqrstuvwxyz';
const GROUPS = 4;
const GROUP_LENGTH = 5;

/**
 * A random password for a PKCS#12 file: 4 groups of 5 symbols joined by '-', about 99 bits of
 * entropy from the CSPRNG (randomInt rejects biased draws). Shown once, never stored.
 */
export function randomPkcs12Password(): string {
  const groups: string[] = [];
  for (let g = 0; g < GROUPS; g++) {
    let group = '';
    for (let i = 0; i < GROUP_LENGTH; i++) group += ALPHABET[randomInt(ALPHABET.length)];
    groups.push(group);
  }
  return groups.join('-');
}
