#!/usr/bin/env node
// The Docker lab's peer secret (docker-compose.yml, service peer-secret): made once, in the
// volume every region's control plane reads it from (`--peer-secret-file`, read-only), as
// `hsmlab up` makes DIR/peer.secret for its own control planes. The control planes sign their
// region-to-region requests with it and refuse internal requests not signed with it, so nothing
// else on the networks can disassociate a replica or push into it (docs/control-plane.md).
//
//   node docker/peer-secret.js FILE
//
// Leaves an existing FILE as it is; otherwise writes a new secret (mode 0600) to a temporary file
// and renames it into place. Prints one line saying which (never the secret); exit 1 on failure.
import { ensurePeerSecretFile } from '@hsmlab/control-plane'

const file = process.argv[2]
if (file === undefined || process.argv.length !== 3) {
  process.stderr.write('usage: node docker/peer-secret.js FILE\n')
  process.exit(1)
}
const made = await ensurePeerSecretFile(file)
process.stdout.write(`peer secret ${file}: ${made ? 'made' : 'kept'}\n`)
