import type { Backend, BackendWrapper, ByteRange } from './backend.js';

/**
 * A backend whose module loads on first use: the cloud SDKs take longer to load than a
 * small backup takes to run, and a folder repository never needs them. Its extras are
 * reached through backendExtra(), which loads it.
 */
export function lazyBackend(location: string, load: () => Promise<Backend>): BackendWrapper {
  let loading: Promise<Backend> | undefined;
  const target = () => (loading ??= load());
  return {
    location,
    unwrap: target,
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
    // Closing what never loaded loads nothing.
    close: async () => (loading ? (await loading).close() : undefined),
  };
}
