/**
 * Every portal text in Japanese and English. The language comes from `?lang=`, then the
 * `kanmon-lang` cookie the switch sets, then Accept-Language; English is the fallback.
 */
export type Lang = 'ja' | 'en';
export const LANGS: readonly Lang[] = ['ja', 'en'];
export const LANG_COOKIE = 'kanmon-lang';

const en = {
  'app.name': 'Kanmon',
  'lang.switch': '日本語',
  'common.requestId': 'Request ID',
  'common.working': 'Waiting for your passkey…',
  'common.unsupported': 'This browser cannot use passkeys. Please use a current version of Chrome, Edge, Safari or Firefox.',
  'common.cancelled': 'The passkey prompt was cancelled or timed out. Please try again.',
  'common.failed': 'That did not work. Please try again.',
  'common.backToApp': 'Back to the application',
  'common.signIn': 'Sign in',
  'common.save': 'Save',
  'common.cancel': 'Cancel',
  'login.title': 'Sign in',
  'login.intro': 'Sign in to continue to the protected application.',
  'login.username': 'Username',
  'login.usernameHint': 'Your browser may offer your passkey when you select this field.',
  'login.button': 'Sign in with a passkey',
  'login.failed': 'Sign-in failed. Please try again, or ask your administrator for help.',
  'login.phoneHint': 'No passkey on this device? Choose "use a phone or tablet" in the browser prompt and scan the QR code with your phone.',
  'enroll.title': 'Set up your passkey',
  'enroll.intro': 'Create a passkey on this device, on your phone or on a security key. From now on you sign in with it instead of a password.',
  'enroll.bootstrapIntro': 'This link sets up the first administrator of this Kanmon. Choose the administrator’s username.',
  'enroll.account': 'Account',
  'enroll.username': 'Username',
  'enroll.displayName': 'Display name',
  'enroll.passkeyName': 'Name for this passkey',
  'enroll.passkeyNameHint': 'Helps you recognise it later, e.g. “Work laptop” or “iPhone”.',
  'enroll.passkeyNameDefault': 'My passkey',
  'enroll.button': 'Create a passkey',
  'enroll.expires': 'This link expires:',
  'enroll.failed': 'The passkey could not be created. Please try again.',
  'enroll.exists': 'That username is already taken. Choose another.',
  'token.title': 'This link cannot be used',
  'token.unknown': 'This link is not valid. Check that you opened the whole link, or ask your administrator for a new one.',
  'token.used': 'This link has already been used. Each link works only once. Ask your administrator for a new one if you still need to set up a passkey.',
  'token.expired': 'This link has expired. Ask your administrator for a new one.',
  'account.title': 'Your account',
  'account.signedInAs': 'Signed in as',
  'account.passkeys': 'Passkeys',
  'account.col.name': 'Name',
  'account.col.created': 'Created',
  'account.col.lastUsed': 'Last used',
  'account.col.kind': 'Kind',
  'account.col.authenticator': 'Authenticator',
  'account.col.actions': 'Actions',
  'account.synced': 'Synced passkey',
  'account.deviceBound': 'Device-bound',
  'account.unknownAuthenticator': 'Unknown',
  'account.never': 'Never',
  'account.rename': 'Rename',
  'account.renamePrompt': 'New name for this passkey',
  'account.delete': 'Delete',
  'account.confirmDelete': 'Delete this passkey? You will no longer be able to sign in with it.',
  'account.add': 'Add a passkey',
  'account.added': 'The passkey was added.',
  'account.lastFactor': 'This is your only way to sign in, so it cannot be deleted. Add another passkey first.',
  'account.sessions': 'Sessions',
  'account.col.started': 'Signed in',
  'account.col.lastSeen': 'Last active',
  'account.col.address': 'Address',
  'account.col.device': 'Browser',
  'account.thisSession': 'This session',
  'account.signOutOthers': 'Sign out all other sessions',
  'account.signedOutOthers': 'The other sessions were signed out.',
  'account.signOut': 'Sign out',
  'signedOut.title': 'You are signed out',
  'signedOut.body': 'Your session has ended. Close the browser if this is a shared computer.',
  'denied.title': 'Access denied',
  'denied.no-route': 'No application is configured at this address.',
  'denied.user-not-allowed': 'Your account is not allowed to use this application. Ask your administrator if you need access.',
  'denied.user-disabled': 'Your account is disabled. Ask your administrator.',
  'stepup.title': 'Additional verification needed',
  'stepup.body': 'This application needs a stronger sign-in than your current session has. Sign in again with one of:',
  'factor.passkey': 'a passkey',
  'factor.otp': 'an authenticator app code',
  'factor.recovery': 'a recovery code',
  'factor.mtls': 'a company device certificate',
  'factor.and': ' and ',
  'error.title': 'Something went wrong',
  'error.badRequest': 'The request could not be processed.',
  'error.notFound': 'This page does not exist.',
  'error.forbidden': 'This request was refused.',
  'error.tooLarge': 'The request was too large.',
  'error.unavailable': 'The service is temporarily unavailable. Please try again in a moment.',
  'error.internal': 'An unexpected error occurred. Please try again later.',
} as const;

export type MessageKey = keyof typeof en;

const ja: Record<MessageKey, string> = {
  'app.name': 'Kanmon',
  'lang.switch': 'English',
  'common.requestId': 'リクエスト ID',
  'common.working': 'パスキーの操作を待っています…',
  'common.unsupported': 'このブラウザーではパスキーを使えません。最新の Chrome、Edge、Safari、Firefox をお使いください。',
  'common.cancelled': 'パスキーの操作がキャンセルされたか、時間切れになりました。もう一度お試しください。',
  'common.failed': 'うまくいきませんでした。もう一度お試しください。',
  'common.backToApp': 'アプリケーションに戻る',
  'common.signIn': 'サインイン',
  'common.save': '保存',
  'common.cancel': 'キャンセル',
  'login.title': 'サインイン',
  'login.intro': '保護されたアプリケーションを利用するには、サインインしてください。',
  'login.username': 'ユーザー名',
  'login.usernameHint': 'この欄を選ぶと、ブラウザーがパスキーを提案することがあります。',
  'login.button': 'パスキーでサインイン',
  'login.failed': 'サインインできませんでした。もう一度お試しいただくか、管理者にお問い合わせください。',
  'login.phoneHint': 'このデバイスにパスキーがない場合は、ブラウザーの画面で「スマートフォンまたはタブレットを使用」を選び、表示された QR コードをスマートフォンで読み取ってください。',
  'enroll.title': 'パスキーの登録',
  'enroll.intro': 'このデバイス、スマートフォン、またはセキュリティキーにパスキーを作成します。今後はパスワードの代わりにこのパスキーでサインインします。',
  'enroll.bootstrapIntro': 'このリンクで、この Kanmon の最初の管理者を登録します。管理者のユーザー名を決めてください。',
  'enroll.account': 'アカウント',
  'enroll.username': 'ユーザー名',
  'enroll.displayName': '表示名',
  'enroll.passkeyName': 'このパスキーの名前',
  'enroll.passkeyNameHint': '後で見分けるための名前です（例：「会社のノート PC」「iPhone」）。',
  'enroll.passkeyNameDefault': 'マイパスキー',
  'enroll.button': 'パスキーを作成',
  'enroll.expires': 'このリンクの有効期限：',
  'enroll.failed': 'パスキーを作成できませんでした。もう一度お試しください。',
  'enroll.exists': 'そのユーザー名はすでに使われています。別の名前を選んでください。',
  'token.title': 'このリンクは使用できません',
  'token.unknown': 'このリンクは無効です。リンク全体を開いたか確認するか、管理者に新しいリンクを依頼してください。',
  'token.used': 'このリンクはすでに使用されています。リンクは一度だけ使えます。パスキーの登録がまだ必要な場合は、管理者に新しいリンクを依頼してください。',
  'token.expired': 'このリンクは有効期限が切れています。管理者に新しいリンクを依頼してください。',
  'account.title': 'アカウント',
  'account.signedInAs': 'サインイン中のユーザー',
  'account.passkeys': 'パスキー',
  'account.col.name': '名前',
  'account.col.created': '作成日時',
  'account.col.lastUsed': '最終使用',
  'account.col.kind': '種類',
  'account.col.authenticator': '認証器',
  'account.col.actions': '操作',
  'account.synced': '同期パスキー',
  'account.deviceBound': 'デバイス固定',
  'account.unknownAuthenticator': '不明',
  'account.never': '未使用',
  'account.rename': '名前を変更',
  'account.renamePrompt': 'このパスキーの新しい名前',
  'account.delete': '削除',
  'account.confirmDelete': 'このパスキーを削除しますか？削除すると、このパスキーではサインインできなくなります。',
  'account.add': 'パスキーを追加',
  'account.added': 'パスキーを追加しました。',
  'account.lastFactor': 'これが唯一のサインイン方法のため、削除できません。先に別のパスキーを追加してください。',
  'account.sessions': 'セッション',
  'account.col.started': 'サインイン日時',
  'account.col.lastSeen': '最終アクセス',
  'account.col.address': 'アドレス',
  'account.col.device': 'ブラウザー',
  'account.thisSession': 'このセッション',
  'account.signOutOthers': '他のセッションをすべてサインアウト',
  'account.signedOutOthers': '他のセッションをサインアウトしました。',
  'account.signOut': 'サインアウト',
  'signedOut.title': 'サインアウトしました',
  'signedOut.body': 'セッションを終了しました。共用のコンピューターの場合は、ブラウザーを閉じてください。',
  'denied.title': 'アクセスが拒否されました',
  'denied.no-route': 'このアドレスにはアプリケーションが設定されていません。',
  'denied.user-not-allowed': 'あなたのアカウントには、このアプリケーションの利用が許可されていません。必要な場合は管理者にお問い合わせください。',
  'denied.user-disabled': 'あなたのアカウントは無効になっています。管理者にお問い合わせください。',
  'stepup.title': '追加の確認が必要です',
  'stepup.body': 'このアプリケーションには、現在のセッションより強いサインインが必要です。次のいずれかの方法で、もう一度サインインしてください：',
  'factor.passkey': 'パスキー',
  'factor.otp': '認証アプリのコード',
  'factor.recovery': 'リカバリーコード',
  'factor.mtls': '会社支給デバイスの証明書',
  'factor.and': ' と ',
  'error.title': '問題が発生しました',
  'error.badRequest': 'リクエストを処理できませんでした。',
  'error.notFound': 'このページは存在しません。',
  'error.forbidden': 'このリクエストは拒否されました。',
  'error.tooLarge': 'リクエストが大きすぎます。',
  'error.unavailable': 'サービスが一時的に利用できません。しばらくしてからもう一度お試しください。',
  'error.internal': '予期しないエラーが発生しました。しばらくしてからもう一度お試しください。',
};

const catalogs: Record<Lang, Record<MessageKey, string>> = { en, ja };

export type Translate = (key: MessageKey) => string;

export function translator(lang: Lang): Translate {
  const catalog = catalogs[lang];
  return (key) => catalog[key];
}

/** Every key exists in both languages (checked by a test), so this never falls through. */
export function allMessageKeys(): MessageKey[] {
  return Object.keys(en) as MessageKey[];
}

export function messagesFor(lang: Lang): Readonly<Record<MessageKey, string>> {
  return catalogs[lang];
}

function isLang(value: unknown): value is Lang {
  return value === 'ja' || value === 'en';
}

/** Picks the language: explicit choice first, then the browser's preference by q-value. */
export function pickLang(query: unknown, cookie: string | undefined, acceptLanguage: string | undefined): Lang {
  if (isLang(query)) return query;
  if (isLang(cookie)) return cookie;
  if (acceptLanguage) {
    const prefs = acceptLanguage
      .split(',')
      .slice(0, 20)
      .map((part, index) => {
        const [tag, ...params] = part.trim().split(';');
        const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
        const weight = q ? Number(q.slice(2)) : 1;
        return { tag: (tag ?? '').toLowerCase(), weight: Number.isFinite(weight) ? weight : 0, index };
      })
      .filter((p) => p.weight > 0)
      .sort((a, b) => b.weight - a.weight || a.index - b.index);
    for (const p of prefs) {
      const primary = p.tag.split('-')[0];
      if (isLang(primary)) return primary;
    }
  }
  return 'en';
}
