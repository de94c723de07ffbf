/**
 * KMU's output formats, byte for byte against the AWS key_mgmt_util pages where they are
 * consistent, and against the choices docs/kmu.md records where they are not.
 */
import { describe, expect, it } from 'vitest'
import { Attribute } from '@hsmlab/protocol'
import type { KeyAttribute } from '@hsmlab/protocol'
import {
  LIST_USERS_HEADER, attributeDump, clusterStatus, errorToString, findKeyList, keyInfoText, listAttributesText,
  listUsersRow, mergeUsers, resultLine
} from '../src/kmu/kmu-format.js'

describe('result and node lines', () => {
  it('prints the result line with a two-digit code and the return code text', () => {
    expect(resultLine('Cfm3GenerateSymmetricKey', 0)).toBe('\n\tCfm3GenerateSymmetricKey returned: 0x00 : HSM Return: SUCCESS\n')
    expect(resultLine('Cfm3DeleteKey', 0xc6)).toBe('\n\tCfm3DeleteKey returned: 0xc6 : HSM Error: Key Access is denied\n')
    expect(resultLine('Cfm3FindKey', 0xa8)).toBe('\n\tCfm3FindKey returned: 0xa8 : HSM Error: Invalid object handle is passed to this operation\n')
    expect(resultLine('Cfm3Verify', 0x1b)).toBe('\n\tCfm3Verify returned: 0x1b : CSP Error: ERR_BAD_PKCS_DATA\n')
  })

  it('prints the Cluster Status block with eight-digit node states', () => {
    expect(clusterStatus([{ nodeId: 0, code: 0 }, { nodeId: 1, code: 0x30000085 }])).toBe(
      '\n\tCluster Error Status\n' +
      '\tNode id 0 and err state 0x00000000 : HSM Return: SUCCESS\n' +
      '\tNode id 1 and err state 0x30000085 : HSM CLUSTER ERROR: Server in cluster is unavailable\n')
    expect(clusterStatus([{ nodeId: 2, code: 0xa8 }])).toContain('Node id 2 and err state 0x000000a8 : HSM Error: Invalid object handle is passed to this operation')
  })
})

describe('findKey', () => {
  it('prints the count, the index range and the handles', () => {
    expect(findKeyList([6, 7, 524296, 9])).toBe(
      '\nTotal number of keys present 4\n\n number of keys matched from start index 0::3\n6, 7, 524296, 9\n')
  })

  it('prints only the count when nothing matched', () => {
    expect(findKeyList([])).toBe('\nTotal number of keys present 0\n')
  })
})

describe('getKeyInfo', () => {
  it('prints owner, shared users and the quorum', () => {
    expect(keyInfoText({ handle: 28, token: true, owner: 3, sharedWith: [4], mValue: 2, keyClass: 3 })).toBe(
      '\n\tOwned by user 3\n\n\talso, shared to following 1 user(s):\n\n\t\t 4\n\t 2 Users need to approve to use/manage this key\n')
  })

  it('prints only the owner of an unshared key', () => {
    expect(keyInfoText({ handle: 21, token: true, owner: 3, sharedWith: [], mValue: 0, keyClass: 2 })).toBe('\n\tOwned by user 3\n')
  })
})

describe('Error2String', () => {
  it('uses the wording of the AWS page', () => {
    expect(errorToString(0xdb)).toBe('\n\tError Code db maps to HSM Error: Invalid User Type.\n')
    expect(errorToString(0xc6)).toBe('\n\tError Code c6 maps to HSM Error: Key Access is denied\n')
    expect(errorToString(0x30000085)).toBe('\n\tError Code 30000085 maps to HSM CLUSTER ERROR: Server in cluster is unavailable\n')
  })
})

describe('listUsers', () => {
  const user = (userId: number, userType: 'CU' | 'CO' | 'PCO' | 'AU', userName: string, mofnPubKey = false) =>
    ({ userId, userType, userName, mofnPubKey, loginFailureCount: 0, twoFactor: false })

  it('lays rows out in the columns of the AWS page', () => {
    expect(LIST_USERS_HEADER).toBe('        Index       User ID     User Type       User Name           MofnPubKey    LoginFailureCnt         2FA')
    expect(listUsersRow(1, user(1, 'PCO', 'admin'))).toBe('        1                1      PCO             admin                     NO               0               NO')
    expect(listUsersRow(3, user(3, 'CU', 'alice', true))).toBe('        3                3      CU              alice                     YES              0               NO')
  })

  it('keeps one space between fields when a name is longer than its column', () => {
    const row = listUsersRow(12, user(1024, 'CU', 'a_user_name_of_thirty_one_chars'))
    expect(row).toContain('a_user_name_of_thirty_one_chars NO')
  })

  it('shows all HSMs as one list, once per distinct user', () => {
    const merged = mergeUsers([[user(1, 'CO', 'admin'), user(3, 'CU', 'alice')], [user(1, 'CO', 'admin'), user(3, 'CU', 'bob')]])
    expect(merged.map(u => `${u.userId}:${u.userName}`)).toEqual(['1:admin', '3:alice', '3:bob'])
  })
})

describe('attribute files', () => {
  const aes: KeyAttribute[] = [
    { id: Attribute.LABEL, name: 'OBJ_ATTR_LABEL', value: '3DES_shared' },
    { id: Attribute.CLASS, name: 'OBJ_ATTR_CLASS', value: 4 },
    { id: Attribute.KEY_TYPE, name: 'OBJ_ATTR_KEY_TYPE', value: 21 },
    { id: Attribute.TOKEN, name: 'OBJ_ATTR_TOKEN', value: 1 },
    { id: Attribute.PRIVATE, name: 'OBJ_ATTR_PRIVATE', value: 1 },
    { id: Attribute.ENCRYPT, name: 'OBJ_ATTR_ENCRYPT', value: 1 },
    { id: Attribute.DECRYPT, name: 'OBJ_ATTR_DECRYPT', value: 1 },
    { id: Attribute.WRAP, name: 'OBJ_ATTR_WRAP', value: 0 },
    { id: Attribute.UNWRAP, name: 'OBJ_ATTR_UNWRAP', value: 0 },
    { id: Attribute.SIGN, name: 'OBJ_ATTR_SIGN', value: 0 },
    { id: Attribute.VERIFY, name: 'OBJ_ATTR_VERIFY', value: 0 },
    { id: Attribute.LOCAL, name: 'OBJ_ATTR_LOCAL', value: 1 },
    { id: Attribute.SENSITIVE, name: 'OBJ_ATTR_SENSITIVE', value: 1 },
    { id: Attribute.EXTRACTABLE, name: 'OBJ_ATTR_EXTRACTABLE', value: 1 },
    { id: Attribute.ID, name: 'OBJ_ATTR_ID', value: 'IT-02' },
    { id: Attribute.VALUE_LEN, name: 'OBJ_ATTR_VALUE_LEN', value: 24 },
    { id: Attribute.KCV, name: 'OBJ_ATTR_KCV', value: new Uint8Array([0x59, 0xa4, 0x6e]) },
    { id: Attribute.DERIVE, name: 'OBJ_ATTR_DERIVE', value: 0 }
  ]

  it('dumps all attributes in the order and encoding of the AWS examples', () => {
    const dump = attributeDump(aes, true)
    expect(dump.file).toBe([
      'OBJ_ATTR_CLASS', '0x04', 'OBJ_ATTR_KEY_TYPE', '0x15', 'OBJ_ATTR_TOKEN', '0x01', 'OBJ_ATTR_PRIVATE', '0x01',
      'OBJ_ATTR_ENCRYPT', '0x01', 'OBJ_ATTR_DECRYPT', '0x01', 'OBJ_ATTR_WRAP', '0x00', 'OBJ_ATTR_UNWRAP', '0x00',
      'OBJ_ATTR_SIGN', '0x00', 'OBJ_ATTR_VERIFY', '0x00', 'OBJ_ATTR_LOCAL', '0x01', 'OBJ_ATTR_SENSITIVE', '0x01',
      'OBJ_ATTR_EXTRACTABLE', '0x01', 'OBJ_ATTR_LABEL', '3DES_shared', 'OBJ_ATTR_ID', 'IT-02',
      'OBJ_ATTR_VALUE_LEN', '0x00000018', 'OBJ_ATTR_KCV', '0x59a46e', 'OBJ_ATTR_DERIVE', '0x00', ''
    ].join('\n'))
    expect(dump.summary).toMatch(/^Attribute size: \d+, count: 18$/)
  })

  it('prints a single attribute with four bytes', () => {
    expect(attributeDump([{ id: Attribute.KEY_TYPE, name: 'OBJ_ATTR_KEY_TYPE', value: 21 }], false))
      .toEqual({ file: 'OBJ_ATTR_KEY_TYPE\n0x00000015\n' })
  })

  it('prints a modulus as hex lines of 80 characters and the exponent in its fewest bytes', () => {
    const modulus = new Uint8Array(256).fill(0xab)
    const dump = attributeDump([
      { id: Attribute.MODULUS, name: 'OBJ_ATTR_MODULUS', value: modulus },
      { id: Attribute.PUBLIC_EXPONENT, name: 'OBJ_ATTR_PUBLIC_EXPONENT', value: 65537 },
      { id: Attribute.MODULUS_BITS, name: 'OBJ_ATTR_MODULUS_BITS', value: 2048 }
    ], true)
    const lines = dump.file.split('\n')
    expect(lines[0]).toBe('OBJ_ATTR_MODULUS')
    // `0x` and 512 hex digits, 80 characters a line, as on the AWS genRSAKeyPair page.
    expect(lines[1]).toMatch(/^0xabab/)
    expect(lines.slice(1, 8).map(l => l.length)).toEqual([80, 80, 80, 80, 80, 80, 34])
    expect(dump.file).toContain('OBJ_ATTR_MODULUS_BITS\n0x00000800\nOBJ_ATTR_PUBLIC_EXPONENT\n0x010001\n')
  })

  it('lists the attributes KMU knows', () => {
    const text = listAttributesText()
    expect(text).toContain('\n      OBJ_ATTR_CLASS                  = 0\n')
    expect(text).toContain('\n      OBJ_ATTR_KCV                    = 371\n')
  })
})
