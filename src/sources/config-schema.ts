import { z } from 'zod';
import { filesSourceSchema } from './files/schema.js';
import { gitSourceSchema } from './git/schema.js';
import { mariadbSourceSchema } from './mariadb/config.js';

/** One entry of stackvault.yaml's sources, told apart by its `type`: each kind's schema beside its driver. */
export const sourceEntrySchema = z.discriminatedUnion('type', [filesSourceSchema, mariadbSourceSchema, gitSourceSchema]);
