/** The administrator's console. Merged into the catalog by ../i18n.ts; every key in both languages. */
export const adminEn = {} as const;

export const adminJa: Record<keyof typeof adminEn, string> = {};
