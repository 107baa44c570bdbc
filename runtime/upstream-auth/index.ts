export { UpstreamSignIn, APPS_PAGE, MARKER_BODY_LIMIT, type HookedForwarder, type HookedUpgrader, type SignInExchange, type SignInUpgrade, type UpstreamSignInOptions } from './upstream-sign-in.js';
export { signInWithForm, signOutOfUpstream, createSignInDispatcher, type SignInClient, type SignInOutcome } from './sign-in.js';
export { JarStore, JAR_KIND, type JarKey, type JarState } from './jar-store.js';
export { applySetCookies, upstreamCookieHeader, parseSetCookie, type JarCookie } from './cookie-jar.js';
export { findLoginForm, type LoginForm } from './login-form.js';
