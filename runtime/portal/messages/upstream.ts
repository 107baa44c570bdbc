/** Upstream applications: error pages, stored upstream credentials, legacy form login. Merged into the catalog by ../i18n.ts; every key in both languages. */
export const upstreamEn = {} as const;

export const upstreamJa: Record<keyof typeof upstreamEn, string> = {};
