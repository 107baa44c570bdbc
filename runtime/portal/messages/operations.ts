/** Operations: server certificates, availability of the store. Merged into the catalog by ../i18n.ts; every key in both languages. */
export const operationsEn = {
  // The store (database) cannot be reached: sign-in fails closed, signed-in users continue for a short while.
  'operations.storeUnavailable.title': 'Sign-in is not available right now',
  'operations.storeUnavailable.body':
    'Kanmon cannot reach its database at the moment, so nobody can sign in and account changes cannot be saved. If you are already signed in, you can keep working for a short while. Please try again in a few minutes; there is nothing else you need to do.',
} as const;

export const operationsJa: Record<keyof typeof operationsEn, string> = {
  'operations.storeUnavailable.title': '現在サインインできません',
  'operations.storeUnavailable.body':
    '関門がデータベースに接続できないため、現在はサインインもアカウントの変更もできません。すでにサインインしている場合は、しばらくの間そのまま利用できます。数分後にもう一度お試しください。ほかに操作は必要ありません。',
};
