import { createRequire } from 'node:module';
import type * as Sdk from '@azure/storage-blob';

/**
 * Azure's SDK, from its CommonJS build: imported, its ES module build and those of its
 * dependencies took 240-250 ms to load on this machine, required, their CommonJS builds
 * 190 ms, on the way to an Azure repository's first request (docs/performance.md,
 * fourteenth session). One build only, so that the errors it throws are the RestError
 * checked for.
 */
export const azureSdk = createRequire(import.meta.url)('@azure/storage-blob') as typeof Sdk;
