/** Company devices: client certificates offered at enrollment, expiry, distribution. Merged into the catalog by ../i18n.ts; every key in both languages. */
export const devicesEn = {} as const;

export const devicesJa: Record<keyof typeof devicesEn, string> = {};
