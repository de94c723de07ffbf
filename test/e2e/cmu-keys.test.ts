/**
 * Goal: CMU's key commands show a key the way the AWS examples do, show a key that exists on one
 * HSM only (the HSMs here are not told about each other, so nothing replicates), and syncKey in
 * server mode repairs it with the same handle.
 *
 * Method: real HSMs; users made with the CMU bin; a key generated on hsm0 by a crypto user
 * through the client library (what KMU's genSymKey does); then a CMU session as that user and as
 * the CO, compared with the expected transcript.
 */
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { runCmuBin, startCluster } from './cmu-helpers.js'

describe('cloudhsm_mgmt_util key commands against real HSMs', () => {
  it('finds, describes and synchronises a key that only one HSM holds', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    const setup = await runCmuBin([config], 'loginHSM PRECO admin password\nchangePswd PRECO admin co12345\ny\n' +
      'createUser CU alice p4ssword\ny\ncreateUser CU bob b0bpassword\ny\nquit\n')
    expect(setup.stdout).toContain('Creating User bob(CU) on 2 nodes\naws-cloudhsm>quit')

    const connection = await HsmConnection.connect({
      url: `ws://127.0.0.1:${cluster.hsms[0]?.port ?? 0}`,
      trustAnchor: decodeTrustAnchor(await readFile(cluster.anchorFile, 'utf8'))
    })
    let handle: number
    try {
      await connection.call('login', { userType: 'CU', userName: 'alice', password: 'p4ssword' })
      handle = (await connection.call('generateSymmetricKey', { label: 'aes256', keyType: 31, sizeBytes: 32 })).handle
    } finally {
      await connection.close()
    }

    const asAlice = await runCmuBin([config], `loginHSM CU alice p4ssword\ngetKeyInfo -k ${handle}\ngetAttribute ${handle} 256\n` +
      `server 0\nsyncKey ${handle} 1\nexit\nshareKey ${handle} 4 1\ny\ngetKeyInfo ${handle}\nquit\n`)
    const info = (label: string, shared: boolean): string => `Key Info on ${label}:\n\n        Token/Flash Key,\n\n        Owned by user 3\n\n` +
      (shared ? '        also, shared to following 1 user(s):\n\n                 4\n' : '')
    expect(asAlice.stdout).toContain(`aws-cloudhsm>getKeyInfo -k ${handle}\n` + info('server 0(hsm0)', false) +
      'getKeyInfo failed: HSM Error: Invalid object handle is passed to this operation\ngetKeyInfo failed on server 1(hsm1)\n')
    expect(asAlice.stdout).toContain(`aws-cloudhsm>getAttribute ${handle} 256\n\nAttribute Value on server 0(hsm0):\nOBJ_ATTR_KEY_TYPE\n0x0000001f\n\n` +
      'getAttribute failed: HSM Error: Invalid object handle is passed to this operation\ngetAttribute failed on server 1(hsm1)\n')
    expect(asAlice.stdout).toContain(`server 0>syncKey ${handle} 1\nsyncKey success\nserver 0>exit\n`)
    expect(asAlice.stdout).toContain('shareKey success on server 0(hsm0)\nshareKey success on server 1(hsm1)\n')
    expect(asAlice.stdout).toContain(`aws-cloudhsm>getKeyInfo ${handle}\n` + info('server 0(hsm0)', true) + info('server 1(hsm1)', true) + 'aws-cloudhsm>quit')

    const asOfficer = await runCmuBin([config], 'loginHSM CO admin co12345\nfindAllKeys 3 1\nfindAllKeys 4 0\nquit\n')
    const hashes = [...asOfficer.stdout.matchAll(/Key Hash:\n([0-9a-f]+)\n\n/g)].map(m => m[1])
    expect(hashes).toHaveLength(2)
    expect(hashes[0]).toBe(hashes[1])
    expect(asOfficer.stdout).toContain(`aws-cloudhsm>findAllKeys 3 1\nKeys on server 0(hsm0):\nNumber of keys found 1\nnumber of keys matched from start index 0::1\n${handle}(o)\nKey Hash:\n`)
    expect(asOfficer.stdout).toContain(`aws-cloudhsm>findAllKeys 4 0\nKeys on server 0(hsm0):\nNumber of keys found 1\nnumber of keys matched from start index 0::1\n${handle}(s)\n` +
      'findAllKeys success on server 0(hsm0)\n\n' +
      `Keys on server 1(hsm1):\nNumber of keys found 1\nnumber of keys matched from start index 0::1\n${handle}(s)\nfindAllKeys success on server 1(hsm1)\naws-cloudhsm>quit`)
  })
})
