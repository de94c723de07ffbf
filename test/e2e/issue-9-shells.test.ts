/**
 * Issue 9 (§1, §4): the shells, attacked as a user on the same machine would.
 *
 * Goal: every file key_mgmt_util and cloudhsm_mgmt_util write that may hold key material or
 * secrets (a plaintext private key, a wrapped key, a masked object, attribute dumps, a
 * certificate) is readable by its owner only (0600), also when a file of that name already
 * existed with wider permissions; and a name that is a member of every JavaScript object
 * (`constructor`, `__proto__`, ...) typed as a command or as a flag gets the documented
 * unknown-command or usage answer from the real shells, which go on serving.
 *
 * Method: one lab (one HSM, CU alice); the real KMU bin in an interactive session writes each
 * file into a working directory where half of them already exist with mode 0644, and fs.stat
 * reads each mode; then the real CMU bin is piped the inherited names and writes getCert and
 * getAttribute files the same way.
 */
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { startLab, tmpDir } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { KmuShell, numberAfter } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{ name: 'primary', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

/** Names every plain JavaScript object answers to. */
const INHERITED = ['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf', 'isPrototypeOf', '__defineGetter__']

function modeOf (file: string): number {
  return statSync(file).mode & 0o777
}

/** Leaves a world-readable file named `name` in `cwd`, as a earlier run or another tool might have. */
function existingWorldReadable (cwd: string, name: string): void {
  writeFileSync(join(cwd, name), 'old content\n')
  chmodSync(join(cwd, name), 0o644)
}

describe('issue 9: the shells', () => {
  it('writes key material 0600, over existing 0644 files too, and answers inherited names as unknown', async () => {
    const lab = await startLab({ lean: true, topology: TOPOLOGY })
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'message'), 'a message to sign\n')
    for (const name of ['private.pem', 'wrapped.key', 'attributes']) existingWorldReadable(cwd, name)

    const kmu = await KmuShell.start(cwd, ['--config', join(lab.dir, 'key_mgmt_util.cfg')])
    expect(await kmu.run('loginHSM -u CU -s alice -p Alice1234')).toContain('Cfm3LoginHSM returned: 0x00')
    const pair = await kmu.run('genRSAKeyPair -m 2048 -e 65537 -l issue9_rsa')
    const privateHandle = numberAfter(pair, 'private key handle:')
    const wrapping = numberAfter(await kmu.run('genSymKey -t 31 -s 32 -l issue9_wrap'), 'Key Handle:')
    const secret = numberAfter(await kmu.run('genSymKey -t 21 -s 24 -l issue9_3des'), 'Key Handle:')
    const nex = numberAfter(await kmu.run('genSymKey -t 31 -s 16 -l issue9_nex -nex'), 'Key Handle:')

    expect(await kmu.run(`exportPrivateKey -k ${privateHandle} -w ${wrapping} -out private.pem`)).toContain('PEM formatted private key is written to private.pem')
    expect(await kmu.run(`exportPrivateKey -k ${privateHandle} -w ${wrapping} -out fresh-private.pem`)).toContain('is written to fresh-private.pem')
    expect(await kmu.run(`wrapKey -k ${secret} -w ${wrapping} -out wrapped.key -m 4`)).toContain('Wrapped Key written to file "wrapped.key"')
    expect(await kmu.run(`extractMaskedObject -o ${nex} -out masked.obj`)).toContain('written to file "masked.obj"')
    expect(await kmu.run(`getAttribute -o ${wrapping} -a 512 -out attributes`)).toContain('Written to: attributes file')
    expect(await kmu.run(`sign -f message -k ${privateHandle} -m 1 -out signature`)).toContain('signature is written to file signature')

    expect(readFileSync(join(cwd, 'private.pem'), 'utf8')).toContain('PRIVATE KEY')
    for (const file of ['private.pem', 'fresh-private.pem', 'wrapped.key', 'masked.obj', 'attributes', 'signature']) {
      expect({ file, mode: modeOf(join(cwd, file)).toString(8) }).toEqual({ file, mode: '600' })
    }

    // Inherited names typed as commands and as flags: the unknown-command error, or the usage.
    for (const name of INHERITED) {
      expect(await kmu.run(name)).toBe(`\n\tError: Unknown command '${name}'. Type help for the list of commands.\n`)
      expect(await kmu.run(`genSymKey -t 31 -s 16 -l k -${name} 1`)).toMatch(/^\n\nDescription\n===========\nGenerates a symmetric key\./)
    }
    expect(await kmu.run('getKeyInfo -k ' + String(wrapping))).toContain('Cfm3GetKey returned: 0x00')
    expect(await kmu.exit()).toBe(0)

    // CMU: getCert and getAttribute files, and the inherited names at its prompt.
    existingWorldReadable(cwd, 'cert.pem')
    const config = lab.status.regions[0]?.clusters[0]?.cmuConfig ?? ''
    const session = [
      ...INHERITED.flatMap(name => [name, `help ${name}`, `${name} -h`, `listUsers -${name}`]),
      `getAttribute ${wrapping} 512 ${join(cwd, 'cmu-attributes')}`,
      'server 0',
      `getCert ${join(cwd, 'cert.pem')} 4`,
      'exit',
      'quit'
    ].join('\n') + '\n'
    const cmu = await runCmuBin([config], session)
    expect(cmu.code).toBe(0)
    for (const name of INHERITED) {
      expect(cmu.stdout).toContain(`aws-cloudhsm>${name}\nUnknown command '${name}'. Type 'help' for the list of commands.\n`)
      expect(cmu.stdout).toContain(`aws-cloudhsm>help ${name}\nError: there is no command '${name}'\n`)
      expect(cmu.stdout).toContain(`aws-cloudhsm>listUsers -${name}\nError: listUsers takes 0 arguments, 1 given\n`)
    }
    expect(cmu.stdout).toContain('getCert Success')
    expect(readFileSync(join(cwd, 'cert.pem'), 'utf8')).toMatch(/^-----BEGIN [A-Z ]*CERTIFICATE-----\n/)
    expect(modeOf(join(cwd, 'cert.pem')).toString(8)).toBe('600')
    expect(modeOf(join(cwd, 'cmu-attributes')).toString(8)).toBe('600')
  })
})
