/**
 * Headers on every portal response: no inline script (CSP), no framing, HTTPS only,
 * nothing cached, and no referrer (which could carry an enrollment token or a return path)
 * sent to other sites. Not `no-referrer`: under it browsers send `Origin: null` on form
 * posts, which the cross-site check rightly refuses, so sign-out would break.
 */
export const PORTAL_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'strict-transport-security': 'max-age=31536000',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};
