import type { Backend, ByteRange } from './backend.js';

type Optional = 'useImmutability' | 'extendRetention' | 'close';

/**
 * A backend whose module loads on first use: the cloud SDKs take longer to load than a
 * small backup takes to run, and a folder repository never needs them. `optional` names
 * the optional methods the real backend has, so callers can still ask for them up front.
 */
export function lazyBackend(location: string, load: () => Promise<Backend>, optional: Optional[]): Backend {
  let loading: Promise<Backend> | undefined;
  const target = () => (loading ??= load());
  const backend: Backend = {
    location,
    prepare: async () => (await target()).prepare(),
    put: async (key: string, data: Uint8Array) => (await target()).put(key, data),
    get: async (key: string, range?: ByteRange) => (await target()).get(key, range),
    stat: async (key: string) => (await target()).stat(key),
    list: (prefix: string) => ({
      async *[Symbol.asyncIterator]() {
        yield* (await target()).list(prefix);
      },
    }),
    delete: async (key: string) => (await target()).delete(key),
  };
  if (optional.includes('useImmutability')) backend.useImmutability = async (days) => (await target()).useImmutability?.(days);
  if (optional.includes('extendRetention')) backend.extendRetention = async (key, until) => (await target()).extendRetention?.(key, until);
  // Closing what never loaded loads nothing.
  if (optional.includes('close')) backend.close = async () => (loading ? (await loading).close?.() : undefined);
  return backend;
}
