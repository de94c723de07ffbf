/**
 * CMU's layouts against the AWS transcripts quoted in shared/reference/cloudhsm.md (A.3, A.5,
 * A.7–A.10, C.1). The expected lines are copied from those transcripts character for character.
 */
import { describe, expect, it } from 'vitest'
import {
  CAUTION_BANNER, CONFIRM_PROMPT, INFO_SERVER_HEADER, LIST_USERS_HEADER, attributeSection, attributeValueText,
  connectedLine, connectingLine, connectionFailedLine, findAllKeysSection, hsmInfoBlock, infoServerRow, keyInfoSection,
  listAttributesLines, listUsersRow, listUsersSection, loginStateText
} from '../src/cmu/format.js'

describe('listUsers (A.7)', () => {
  it('prints the wide table of the AWS examples byte for byte', () => {
    const expected = [
      'Users on server 0(10.0.2.9):',
      'Number of users found:2',
      '',
      '    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA',
      '         1              CO              admin                                    NO               0               NO',
      '         2              AU              app_user                                 NO               0               NO'
    ]
    expect(listUsersSection('server 0(10.0.2.9)', [
      { userId: 1, userType: 'CO', userName: 'admin', mofnPubKey: false, loginFailureCount: 0, twoFactor: false },
      { userId: 2, userType: 'AU', userName: 'app_user', mofnPubKey: false, loginFailureCount: 0, twoFactor: false }
    ])).toEqual(expected)
  })

  it('keeps the column widths: 10, 14 spaces, 16, 32, 11, 16, 17 = 116 characters', () => {
    expect(LIST_USERS_HEADER).toHaveLength(116)
    const row = listUsersRow({ userId: 1024, userType: 'PRECO', userName: 'a'.repeat(31), mofnPubKey: true, loginFailureCount: 5, twoFactor: true })
    expect(row).toHaveLength(116)
    expect(row).toBe('      1024              PRECO           aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa         YES               5              YES')
    expect(row.endsWith(' ')).toBe(false)
  })
})

describe('findAllKeys (A.10)', () => {
  it('matches the AWS example without hash', () => {
    expect(findAllKeysSection('server 0(10.0.0.1)', [
      { handle: 8, relation: 'shared' }, { handle: 9, relation: 'shared' }, { handle: 17, relation: 'public' },
      { handle: 262162, relation: 'shared' }, { handle: 19, relation: 'public' }, { handle: 31, relation: 'public' }
    ], undefined)).toEqual([
      'Keys on server 0(10.0.0.1):',
      'Number of keys found 6',
      'number of keys matched from start index 0::6',
      // The guide's last revision marks the owner's public keys 19 and 31 (o); its bare 17 is a
      // doc inconsistency like 11, bare on server 0 and (o) on server 1 of the hash example.
      '8(s),9(s),17(o),262162(s),19(o),31(o)',
      'findAllKeys success on server 0(10.0.0.1)'
    ])
  })

  it('marks owned keys (o) and prints the hash section', () => {
    const hash = '55655676c95547fd4e82189a072ee1100eccfca6f10509077a0d6936a976bd49'
    expect(findAllKeysSection('server 1(10.0.0.2)', [
      { handle: 8, relation: 'shared' }, { handle: 11, relation: 'owned' }, { handle: 17, relation: 'public' }
    ], hash)).toEqual([
      'Keys on server 1(10.0.0.2):',
      'Number of keys found 3',
      'number of keys matched from start index 0::3',
      '8(s),11(o),17(o)',
      'Key Hash:',
      hash,
      '',
      'findAllKeys success on server 1(10.0.0.2)'
    ])
  })
})

describe('getKeyInfo (A.10)', () => {
  it('matches the shared-key example', () => {
    expect(keyInfoSection('server 0(10.0.0.1)', { handle: 262162, token: true, owner: 3, sharedWith: [4, 6], mValue: 0, keyClass: 4 })).toEqual([
      'Key Info on server 0(10.0.0.1):',
      '',
      '        Token/Flash Key,',
      '',
      '        Owned by user 3',
      '',
      '        also, shared to following 2 user(s):',
      '',
      '                 4',
      '                 6'
    ])
  })

  it('matches the public-key example and the quorum line', () => {
    expect(keyInfoSection('server 1(10.0.3.6)', { handle: 262179, token: true, owner: 3, sharedWith: [], mValue: 0, keyClass: 2 })).toEqual([
      'Key Info on server 1(10.0.3.6):', '', '        Token/Flash Key,', '', '        Owned by user 3', ''
    ])
    const quorum = keyInfoSection('server 0(10.0.0.1)', { handle: 10, token: true, owner: 3, sharedWith: [4], mValue: 2, keyClass: 4 })
    expect(quorum.slice(-2)).toEqual(['                 4', '         2 Users need to approve to use/manage this key'])
  })
})

describe('getAttribute and listAttributes (A.10, C.1)', () => {
  it('prints a blank line, the heading, the name and the 8-digit hex value', () => {
    expect(attributeSection('server 0(10.0.1.10)', [{ id: 354, name: 'OBJ_ATTR_EXTRACTABLE', value: 1 }])).toEqual([
      '', 'Attribute Value on server 0(10.0.1.10):', 'OBJ_ATTR_EXTRACTABLE', '0x00000001'
    ])
  })

  it('prints strings raw and bytes as hex', () => {
    expect(attributeValueText(0x15)).toBe('0x00000015')
    expect(attributeValueText('my label')).toBe('my label')
    expect(attributeValueText(new Uint8Array([0x59, 0xa4, 0x6e]))).toBe('0x59a46e')
  })

  it('lists attributes 6 spaces in, names padded to 32, in CMU order ending with ALL', () => {
    const lines = listAttributesLines()
    expect(lines.slice(0, 4)).toEqual(['', 'Following are the possible attribute values for getAttribute:', '', '      OBJ_ATTR_CLASS                  = 0'])
    expect(lines).toContain('      OBJ_ATTR_UNWRAP_TEMPLATE        = 1073742354')
    expect(lines.at(-1)).toBe('      OBJ_ATTR_ALL                    = 512')
    expect(lines).toHaveLength(3 + 29)
  })
})

describe('info server (A.8)', () => {
  it('matches the AWS example', () => {
    expect(INFO_SERVER_HEADER).toBe('Id      Name                    Hostname         Port   State           Partition               LoginState')
    expect(infoServerRow({
      id: 0, name: '10.0.0.1', hostname: '10.0.0.1', port: 2225, state: 'Connected', partition: 'hsm-udw0tkfg1ab',
      loginState: loginStateText({ userName: 'testuser', userType: 'CU' })
    })).toBe("0       10.0.0.1                10.0.0.1        2225    Connected       hsm-udw0tkfg1ab         Logged in as 'testuser(CU)'")
  })
})

describe('getHSMInfo (A.9)', () => {
  it('matches the start of the AWS block', () => {
    const block = hsmInfoBlock(0, {
      hsmId: 'hsm-udw0tkfg1ab', clusterId: 'cluster-x', lineage: 'l', label: 'cavium', model: 'NITROX-III CNN35XX-NFBE',
      serialNumber: '3.0A0101-ICM000001', firmwareVersion: '2.3.13', fipsState: 2, totalTokenObjects: 560596,
      freeTokenObjects: 294568, userCount: 2, keyCount: 0
    })
    expect(block.slice(0, 8)).toEqual([
      '                *** Server 0 HSM Info ***',
      '',
      '        Label                :cavium',
      '        Model                :NITROX-III CNN35XX-NFBE',
      '',
      '        Serial Number        :3.0A0101-ICM000001',
      '        HSM Flags            :0',
      '        FIPS state           :2 [FIPS mode with single factor authentication]'
    ])
    expect(block).toContain('        TotalPublicMemory    :560596')
    expect(block).toContain('        Firmware Minor       :03')
    expect(block).toContain('        Temperature          :56 C')
    expect(block).toContain('        Firmware ID          :hsm-udw0tkfg1ab')
  })
})

describe('start-up trace and banner (A.3, A.5)', () => {
  it('matches the AWS trace lines', () => {
    expect(connectingLine('10.0.2.9', '10.0.2.9', 2225)).toBe("Connecting to server '10.0.2.9': hostname '10.0.2.9', port 2225...")
    expect(connectedLine('10.0.2.9', '10.0.2.9', 2225)).toBe("Connected to server '10.0.2.9': hostname '10.0.2.9', port 2225.")
    expect(connectionFailedLine('10.0.3.11', 2225, 'Connection timed out')).toBe('Connection to server 10.0.3.11(10.0.3.11) on port 2225 failed:Connection timed out')
  })

  it('prints the current caution banner', () => {
    expect([...CAUTION_BANNER, '', CONFIRM_PROMPT].join('\n')).toBe([
      '*************************CAUTION********************************',
      'This is a CRITICAL operation, should be done on all nodes in the',
      'cluster. AWS does NOT synchronize these changes automatically with the',
      'nodes on which this operation is not executed or failed, please',
      'ensure this operation is executed on all nodes in the cluster.',
      '****************************************************************',
      '',
      'Do you want to continue(y/n)?'
    ].join('\n'))
  })
})

describe('failure reasons', () => {
  it('names the start-up failures as the real tool does', async () => {
    const { ClientError, CLIENT_ERR_CONNECT, CLIENT_ERR_UNTRUSTED, CLIENT_ERR_CLOSED, CLIENT_ERR_TIMEOUT } = await import('@hsmlab/client')
    const { describeConnectFailure, describeFailure } = await import('../src/cmu/failures.js')
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
    expect(describeConnectFailure(new ClientError(CLIENT_ERR_CONNECT, 'cannot connect', { cause: refused }))).toBe('Connection refused')
    expect(describeConnectFailure(new ClientError(CLIENT_ERR_CONNECT, 'ws://x did not complete the handshake within 5000 ms'))).toBe('Connection timed out')
    expect(describeConnectFailure(new ClientError(CLIENT_ERR_CONNECT, 'cannot connect', { cause: new Error('Opening handshake has timed out') }))).toBe('Connection timed out')
    expect(describeConnectFailure(new ClientError(CLIENT_ERR_UNTRUSTED, 'ws://x: bad', { cause: new Error('not signed by the trust anchor') })))
      .toBe('Certificate verification failed: not signed by the trust anchor')
    expect(describeFailure(new ClientError(CLIENT_ERR_CLOSED, 'closed'), 30000)).toEqual({ reason: 'server is not connected' })
    expect(describeFailure(new ClientError(CLIENT_ERR_TIMEOUT, 'late'), 1500).reason).toBe('server did not respond within 1500 ms')
    const { ReturnCode, WireError } = await import('@hsmlab/protocol')
    // The HSM's detail is kept apart: only syncKey and syncUser print it (reasonWithDetail).
    const failure = describeFailure(new WireError(ReturnCode.USER_LOGIN_FAILURE, 'wrong password'), 30000)
    expect(failure).toEqual({ reason: 'HSM Error: RET_USER_LOGIN_FAILURE', returnCode: 0xa3, detail: 'wrong password' })
    const { reasonWithDetail } = await import('../src/cmu/failures.js')
    expect(reasonWithDetail(failure)).toBe('HSM Error: RET_USER_LOGIN_FAILURE (wrong password)')
    expect(reasonWithDetail(describeFailure(new WireError(ReturnCode.USER_LOGIN_FAILURE), 30000))).toBe('HSM Error: RET_USER_LOGIN_FAILURE')
  })
})
