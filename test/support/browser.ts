/**
 * Debian's chromium driven by playwright-core, with the Chrome DevTools WebAuthn virtual
 * authenticator standing in for a phone or a security key.
 *
 * TLS trust: Kanmon serves a certificate from its own development CA, which this browser
 * does not know. Contexts are opened with `ignoreHTTPSErrors` (CDP
 * Security.setIgnoreCertificateErrors). Checked on Chromium 156: the page is still a secure
 * context, and navigator.credentials runs real ceremonies on it (enrollment and login
 * succeed, and without a virtual authenticator a create() call stays pending instead of
 * being refused for a certificate error). Without the flag, navigation fails with
 * ERR_CERT_AUTHORITY_INVALID. That the certificate is one a browser trusting the dev CA
 * would accept (chain and the name `localhost`) is checked separately with node:tls in
 * first-admin.test.ts, so ignoring errors here hides nothing the suite relies on.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.KANMON_E2E_CHROMIUM ?? '/usr/bin/chromium';

/** Where screenshots go (gitignored); the README borrows from here. */
export const SCREENSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-results', 'screenshots');

/** Quiet, deterministic flags: no sandbox (containers run as root), no background traffic, no QUIC. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

export interface ContextOptions {
  /** Sets navigator.language and the Accept-Language header, e.g. "ja-JP". @default "en-US" */
  readonly locale?: string;
}

/** A fresh profile: no cookies, no passkeys. One per test keeps tests independent. */
export function newContext(browser: Browser, opts: ContextOptions = {}): Promise<BrowserContext> {
  return browser.newContext({
    ignoreHTTPSErrors: true,
    locale: opts.locale ?? 'en-US',
    viewport: { width: 1000, height: 760 },
  });
}

/** Options for WebAuthn.addVirtualAuthenticator, minus the protocol details every test shares. */
export interface AuthenticatorKind {
  /** "internal" is a platform authenticator (phone, laptop); "usb" a security key. @default "internal" */
  readonly transport?: 'internal' | 'usb' | 'nfc' | 'ble' | 'hybrid';
  /** Whether new credentials are backup eligible and backed up (a synced passkey). @default false */
  readonly synced?: boolean;
}

export interface VirtualCredential {
  readonly credentialId: string;
  readonly isResidentCredential: boolean;
  readonly rpId?: string;
  readonly privateKey: string;
  readonly userHandle?: string;
  readonly signCount: number;
  readonly backupEligibility?: boolean;
  readonly backupState?: boolean;
}

/**
 * A virtual authenticator attached to one page's CDP session. It answers every ceremony on
 * that page (user present and verified), so a click on "create passkey" completes with no
 * prompt. It belongs to the page's target: another context needs its own.
 */
export class VirtualAuthenticator {
  private constructor(
    readonly cdp: CDPSession,
    readonly authenticatorId: string,
  ) {}

  static async attach(page: Page, kind: AuthenticatorKind = {}): Promise<VirtualAuthenticator> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    return VirtualAuthenticator.add(cdp, kind);
  }

  /** A second device on the same page (the CDP session must already have WebAuthn enabled). */
  static async add(cdp: CDPSession, kind: AuthenticatorKind = {}): Promise<VirtualAuthenticator> {
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: kind.transport ?? 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
        defaultBackupEligibility: kind.synced ?? false,
        defaultBackupState: kind.synced ?? false,
      },
    });
    return new VirtualAuthenticator(cdp, authenticatorId);
  }

  async credentials(): Promise<VirtualCredential[]> {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.authenticatorId });
    return credentials as VirtualCredential[];
  }

  /** Puts an existing passkey on this authenticator, as a synced passkey arrives on a new device. */
  async addCredential(credential: VirtualCredential): Promise<void> {
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId: this.authenticatorId, credential });
  }

  async removeCredential(credentialId: string): Promise<void> {
    await this.cdp.send('WebAuthn.removeCredential', { authenticatorId: this.authenticatorId, credentialId });
  }

  /** Unplugs the device: later ceremonies on the page no longer see it. */
  async remove(): Promise<void> {
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: this.authenticatorId });
  }
}

/** CDP reports credential ids in standard base64; Kanmon and the pages use base64url. */
export function toBase64url(base64: string): string {
  return Buffer.from(base64, 'base64').toString('base64url');
}

/** Saves a full-page screenshot as test-results/screenshots/<name>.png. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
