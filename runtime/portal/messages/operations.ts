/** Operations: server certificates, availability of the store. Merged into the catalog by ../i18n.ts; every key in both languages. */
export const operationsEn = {} as const;

export const operationsJa: Record<keyof typeof operationsEn, string> = {};
