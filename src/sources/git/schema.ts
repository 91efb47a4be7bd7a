import { z } from 'zod';
import { sourceName } from '../source-name.js';

/** Another git repository the stack keeps (dial plans, scripts): `type: git` in stackvault.yaml. */
export const gitSourceSchema = z.strictObject({ name: sourceName, type: z.literal('git'), path: z.string().min(1) });
