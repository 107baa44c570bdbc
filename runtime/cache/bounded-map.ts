/**
 * Stores `key → value` as the newest entry of `map`, first evicting the entries stored
 * longest ago so that at most `maxEntries` remain. A Map iterates in insertion order, so its
 * first key is always the oldest; re-setting a key moves it to the end. The in-process caches
 * (sessions, token digests, identity tokens, certificate status, KMS data keys) use this to
 * keep memory flat however many distinct keys pass through.
 */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, maxEntries: number): void {
  map.delete(key);
  while (map.size >= maxEntries) {
    const oldest = map.keys().next();
    if (oldest.done) break;
    map.delete(oldest.value);
  }
  map.set(key, value);
}
