import { z } from 'zod';
import { sourceName } from '../source-name.js';

const patternList = z.array(z.string().min(1, 'a pattern may not be empty'));

export const filesSourceSchema = z.strictObject({
  name: sourceName,
  type: z.literal('files'),
  path: z.string().min(1),
  include: patternList.optional(),
  exclude: patternList.optional(),
  /** which exclusion classes apply to this source; all classes in force when omitted */
  exclusions: z.array(z.string()).optional(),
});
