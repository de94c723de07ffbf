#!/usr/bin/env node
// The Docker lab's manufacturer key (docker-compose.yml, service manufacturer-key): made once,
// in the volume every region's control plane reads it from and passes to its HSMs, as
// `hsmlab up` makes DIR/manufacturer.key once for its control planes. Every region must have the
// same key, or a backup copied across regions cannot be restored there.
//
//   node docker/manufacturer-key.js FILE
//
// Leaves an existing FILE as it is (a new key would make every HSM's data and every backup
// unreadable); otherwise writes a new key (mode 0600) to a temporary file and renames it into
// place, so that FILE is never half written. Prints one line saying which; exit 1 on failure.
import { access, rename } from 'node:fs/promises'
import { createManufacturerKey, writeManufacturerKey } from '@hsmlab/hsm'

const file = process.argv[2]
if (file === undefined || process.argv.length !== 3) {
  process.stderr.write('usage: node docker/manufacturer-key.js FILE\n')
  process.exit(1)
}
try {
  await access(file)
  process.stdout.write(`manufacturer key ${file}: kept\n`)
} catch {
  const tmp = `${file}.tmp-${process.pid}`
  await writeManufacturerKey(tmp, createManufacturerKey())
  await rename(tmp, file)
  process.stdout.write(`manufacturer key ${file}: made\n`)
}
