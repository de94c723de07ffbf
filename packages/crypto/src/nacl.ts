/**
 * tweetnacl, loaded with `require`. It is a CommonJS module, and importing one from an ES module
 * makes Node first scan its source for exports (70 KB here): `require` takes about 4 ms of a
 * process start instead of about 12, in every hsmlab process.
 */
import { createRequire } from 'node:module'
import type naclModule from 'tweetnacl'

export const nacl = createRequire(import.meta.url)('tweetnacl') as typeof naclModule
