/**
 * `kanmon policy check <user> <url>`: what the gateway would decide for this user at this URL,
 * and why, from the real route table, the user's groups and group rules. The session is assumed
 * fresh (no route timeout applies) and signed in with `--methods` (default: a passkey); with a
 * passkey, each of the user's registered passkeys is tried, since device rules depend on which.
 */
import { FACTORS, type Factor, type KanmonConfig, type RouteConfig } from '../config/schema.js';
import { decideAccess, passkeyRuleFor, type Decision, type PolicyPasskey } from '../policy/decide.js';
import { RouteTable } from '../routing/route-table.js';
import type { Services } from '../services/index.js';
import type { User } from '../store/types.js';
import { parseArgs, UsageError } from './args.js';
import type { CliOutput } from './enrollment-commands.js';

const ALLOWED_METHODS: readonly string[] = FACTORS.filter((f) => f !== 'mtls');

interface Trial {
  /** What the session was signed in with, as a phrase. */
  readonly label: string;
  readonly passkey?: PolicyPasskey;
}

export async function policyCheckCommand(args: readonly string[], services: Services, config: KanmonConfig, io: CliOutput): Promise<number> {
  const a = parseArgs(args, { options: ['methods'], flags: ['cert', 'json'] });
  if (a.positionals.length !== 2) throw new UsageError('expected: kanmon policy check <user> <url>');
  const [name, rawUrl] = a.positionals as [string, string];
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new UsageError(`expected a URL like https://app.example.com/path, got ${JSON.stringify(rawUrl)}`);
  }
  const methods = (a.options.get('methods')?.at(-1) ?? 'passkey').split(/[,+]/).map((m) => m.trim()).filter(Boolean);
  for (const m of methods) {
    if (!ALLOWED_METHODS.includes(m)) throw new UsageError(`--methods takes ${ALLOWED_METHODS.join(', ')} (use --cert for a client certificate), got ${JSON.stringify(m)}`);
  }
  const user = await services.users.require(name);
  const route = new RouteTable(config.routes.map((r) => ({ route: r }))).match(url.host, `${url.pathname}${url.search}`)?.route;

  const trials: Trial[] = [];
  if (methods.includes('passkey')) {
    const passkeys = await services.passkeyAccount.evidence(user);
    for (const p of passkeys) trials.push({ label: `passkey "${p.name}" (${describePasskey(p.passkey, p.authenticator)})`, passkey: p.passkey });
    if (passkeys.length === 0) trials.push({ label: 'a passkey (the user has none registered yet, so nothing is known of the device)' });
  } else {
    trials.push({ label: methods.join(' + ') });
  }

  const now = Date.now();
  const results = trials.map((trial) => {
    const decision = decideAccess(
      route,
      {
        userId: user.id,
        username: user.username,
        groups: user.groups,
        disabled: user.disabled,
        authMethods: methods,
        ...(trial.passkey ? { passkey: trial.passkey } : {}),
        session: { createdAt: now, lastSeenAt: now },
      },
      // --cert: as if the connection presented a valid certificate of this user.
      a.flags.has('cert') ? { clientCertificate: { valid: true, owner: { kind: 'user', userId: user.id } } } : {},
      { now, groups: config.groups, mtlsRequiredFor: config.mtls.requiredFor },
    );
    return { trial, decision };
  });

  if (a.flags.has('json')) {
    io.out(
      JSON.stringify(
        {
          user: user.username,
          groups: user.groups,
          url: url.href,
          route: route?.id ?? null,
          methods,
          clientCertificate: a.flags.has('cert'),
          results: results.map((r) => ({ signedInWith: r.trial.label, decision: r.decision })),
        },
        null,
        2,
      ),
    );
    return 0;
  }

  io.out(`user:   ${user.username}${user.groups.length ? ` (groups: ${user.groups.join(', ')})` : ' (no groups)'}${user.disabled ? ' [disabled]' : ''}`);
  io.out(`url:    ${url.href}`);
  io.out(route ? `route:  ${route.id} (${describeRoute(route)})` : 'route:  none');
  io.out(`signed in with: ${methods.join(' + ')}${a.flags.has('cert') ? ' + a valid client certificate' : ''} (a fresh session)`);
  for (const { trial, decision } of results) {
    io.out('');
    if (methods.includes('passkey')) io.out(`with ${trial.label}:`);
    io.out(`  ${decision.kind.toUpperCase()}`);
    for (const line of explain(decision, route, user, config)) io.out(`  ${line}`);
  }
  return 0;
}

function describePasskey(p: PolicyPasskey, authenticator: string | undefined): string {
  const kind = p.deviceBound ? 'device-bound' : 'synced';
  const model = authenticator ?? (p.aaguid === '00000000-0000-0000-0000-000000000000' ? 'model not disclosed' : `AAGUID ${p.aaguid}`);
  return `${kind}, ${model}, ${p.attested ? 'attested' : 'not attested'}`;
}

function describeRoute(route: RouteConfig): string {
  const parts = [`host ${route.match.host ?? '*'}`, `path ${route.match.pathPrefix}`, `factors ${alternatives(route.policy.factors)}`];
  if (route.policy.allowUsers.length || route.policy.allowGroups.length) {
    parts.push(`users [${route.policy.allowUsers.join(', ')}] groups [${route.policy.allowGroups.join(', ')}]`);
  }
  if (route.policy.deviceBound) parts.push('device-bound passkeys');
  if (route.policy.aaguidAllowlist.length) parts.push(`AAGUIDs [${route.policy.aaguidAllowlist.join(', ')}]`);
  if (route.policy.idleTimeoutSeconds !== undefined) parts.push(`idle ${route.policy.idleTimeoutSeconds}s`);
  if (route.policy.absoluteTimeoutSeconds !== undefined) parts.push(`absolute ${route.policy.absoluteTimeoutSeconds}s`);
  return parts.join('; ');
}

function alternatives(factors: readonly (readonly Factor[])[]): string {
  return factors.map((alt) => alt.join('+')).join(' | ');
}

/** Why, in a sentence or two an administrator can act on. */
function explain(decision: Decision, route: RouteConfig | undefined, user: User, config: KanmonConfig): string[] {
  switch (decision.kind) {
    case 'allow': {
      const rule = passkeyRuleFor(route!, user, config.groups);
      const lines = [`the session satisfies ${alternatives(route!.policy.factors)}.`];
      if (rule.deviceBound) lines.push(`device-bound passkeys are demanded by ${rule.requiredBy.join(' and ')}: met, or not needed for the factors used.`);
      return lines;
    }
    case 'login':
      return decision.reason === 'no-session' ? ['there is no session: the user is sent to sign in.'] : [`the session is past the route's ${decision.reason === 'route-idle-timeout' ? 'idle' : 'absolute'} timeout: sign in again.`];
    case 'deny':
      if (decision.reason === 'no-route') return ['no route matches this host and path: Kanmon refuses it (404) rather than pass it through.'];
      if (decision.reason === 'user-disabled') return [`${user.username} is disabled.`];
      return [`the route admits users [${route!.policy.allowUsers.join(', ')}] and groups [${route!.policy.allowGroups.join(', ')}]; ${user.username} is in [${user.groups.join(', ')}].`];
    case 'certificate-required':
      return [
        decision.reason === 'certificate-other-user'
          ? 'the connection presented a client certificate of another user, which proves nothing for this one.'
          : `the route (or mtls.requiredFor) needs a company device certificate, and ${decision.reason === 'no-certificate' ? 'none was presented' : 'the one presented is not valid'}: issue one with kanmon cert issue ${user.username}.`,
      ];
    case 'step-up': {
      const by = decision.passkeyRule?.requiredBy.map((r) => (r === 'route' ? `route ${route!.id}` : `the rule of group ${r.slice('group:'.length)}`)).join(' and ');
      switch (decision.reason) {
        case 'passkey-not-device-bound':
          return [`${by} demand${decision.passkeyRule!.requiredBy.length > 1 ? '' : 's'} a device-bound passkey (BE = 0), and this one is synced or unknown.`, 'what qualifies: a security key (USB/NFC), registered with "A security key" on the enrollment or account page.'];
        case 'authenticator-not-allowed':
          return [`route ${route!.id} accepts only these authenticator models (AAGUIDs): ${decision.passkeyRule!.aaguidAllowlist.join(', ')}; this passkey is not one of them.`];
        case 'authenticator-not-attested':
          return [`route ${route!.id} needs the model proven by a verified attestation; this passkey was registered without one that chains to a root in the metadata BLOB${config.webauthn.mdsBlobFile ? '' : ' (none is configured: set webauthn.mdsBlobFile)'}.`, 'remove it and register it again (the options now ask for attestation).'];
        default:
          return [`the session's factors satisfy none of ${alternatives(decision.alternatives)}: the user is asked for the missing one.`];
      }
    }
  }
}
