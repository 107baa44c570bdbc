/**
 * The phone's authenticator app, played by a test: the codes an app holding a secret shows,
 * computed with otplib at the real clock.
 */
import { generate } from 'otplib';

/** What the app shows `steps` 30-second steps from now. */
export function appCode(secret: string, steps = 0): Promise<string> {
  return generate({ secret, epoch: Math.floor(Date.now() / 1000) + steps * 30 });
}

/** A code the app does not show now or within the tolerance either side. */
export async function wrongCode(secret: string): Promise<string> {
  const valid = new Set(await Promise.all([-1, 0, 1, 2].map((s) => appCode(secret, s))));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}
