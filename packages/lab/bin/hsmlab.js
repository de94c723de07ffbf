#!/usr/bin/env node
// Thin launcher, committed executable so that npm can link it before the first build.
// msgpackr without its native string extractor (LAB_PROCESS_ENV in src/launcher.ts says why): the
// variable is read when msgpackr is imported, so it is set before the import, and children inherit it.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true'
await import('../dist/bin/hsmlab.js')
