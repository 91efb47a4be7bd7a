import { createRequire } from 'node:module';
import type * as Sdk from '@aws-sdk/client-s3';

// The SDK warns on every run under Node 20 about its own future releases: news for us when
// we update it, noise for a user whose nightly backup mails its output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * The AWS SDK, loaded with require(). The package is CommonJS only (one file of 270 KB,
 * and its dependencies): imported from ES modules, Node first scans that file's source for
 * the names it exports, 170 ms to load it instead of 115 on this machine, on the way to an
 * S3 repository's first request (docs/performance.md, fourteenth session).
 */
export const s3Sdk = createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof Sdk;
