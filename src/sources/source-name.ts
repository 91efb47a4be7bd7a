import { z } from 'zod';

/** A source's name: the name of its folder in every snapshot. */
export const sourceName = z.string().regex(/^[A-Za-z0-9._-]+$/, 'a source name may only hold letters, digits, ".", "_" and "-"');
