/**
 * What key_mgmt_util prints for `help` (the list of the AWS help page) and for `<command> -h`
 * (a Description / Syntax / Where block in the real tool's layout, worded from the AWS pages).
 */

/** Renders one command's usage block. */
export function usageBlock (description: string, syntax: readonly string[], where: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...where.map(([flag]) => flag.length)) + 2
  let text = `\n\nDescription\n===========\n${description}\n\nSyntax: ${syntax[0] ?? ''}\n`
  for (const line of syntax.slice(1)) text += `        ${line}\n`
  text += '\n'
  where.forEach(([flag, meaning], i) => {
    const lines = meaning.split('\n')
    text += `${i === 0 ? 'Where: ' : '       '}${flag.padEnd(width)}${lines[0] ?? ''}\n`
    for (const more of lines.slice(1)) text += `${' '.repeat(7 + width)}${more}\n`
  })
  return text
}

const MIN_SRV = ['-min_srv', 'minimum number of HSMs the key must be synchronized to before -timeout\nexpires; if it is not, the key is not created (default 1)'] as const
const TIMEOUT = ['-timeout', 'seconds to wait for -min_srv HSMs (only with -min_srv; default: no limit)'] as const
const KEY_TYPES = '16 = GENERIC_SECRET, 18 = RC4, 21 = DES3, 31 = AES'

const SIGN_MECHANISMS =
  'SHA1_RSA_PKCS       - 0\nSHA256_RSA_PKCS     - 1\nSHA384_RSA_PKCS     - 2\nSHA512_RSA_PKCS     - 3\n' +
  'SHA224_RSA_PKCS     - 4\nSHA1_RSA_PKCS_PSS   - 5\nSHA256_RSA_PKCS_PSS - 6\nSHA384_RSA_PKCS_PSS - 7\n' +
  'SHA512_RSA_PKCS_PSS - 8\nSHA224_RSA_PKCS_PSS - 9\nECDSA_SHA1          - 15\nECDSA_SHA224        - 16\n' +
  'ECDSA_SHA256        - 17\nECDSA_SHA384        - 18\nECDSA_SHA512        - 19'

/** Usage blocks by command name. */
export const USAGE: Readonly<Record<string, string>> = {
  loginHSM: usageBlock('Logs in to every HSM of the cluster. Only crypto users (CU) can log in to key_mgmt_util.',
    ['loginHSM -h -u <user type> -s <username> {-p <password> | -hpswd}'],
    [['-h', 'displays this information'], ['-u', 'specifies the user type as "CU"'], ['-s', 'specifies the user name'],
      ['-p', 'specifies the user password'], ['-hpswd', 'prompts for the password instead of taking it on the command line']]),
  logoutHSM: usageBlock('Logs out from every HSM of the cluster.', ['logoutHSM -h'], [['-h', 'displays this information']]),
  genSymKey: usageBlock('Generates a symmetric key.',
    ['genSymKey -h -t <key type> -s <key size> -l <label>',
      '[-id <key ID>] [-sess] [-nex] [-u <user-ids>] [-m_value <0..8>] [-attest]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-t', `specifies the key type\n(${KEY_TYPES})`],
      ['-s', 'specifies the key size in bytes\nAES: 16, 24, 32; DES3: 24; GENERIC_SECRET: < 3584'],
      ['-l', 'specifies the key label'], ['-id', 'specifies the key ID (unique in the cluster)'],
      ['-sess', 'creates a session key (this HSM and this session only)'], ['-nex', 'makes the key non-extractable'],
      ['-u', 'specifies the users to share the key with (user IDs separated by ,)'],
      ['-m_value', 'specifies the number of users who must approve use of the key'],
      ['-attest', 'performs the attestation check on the firmware response'], MIN_SRV, TIMEOUT]),
  genRSAKeyPair: usageBlock('Generates an RSA key pair.',
    ['genRSAKeyPair -h -m <modulus length> -e <public exponent> -l <label>',
      '[-id <key ID>] [-sess] [-nex] [-u <user-ids>] [-m_value <0..8>] [-attest]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-m', 'specifies the modulus length in bits (at least 2048)'],
      ['-e', 'specifies the public exponent (an odd number, at least 65537)'],
      ['-l', 'specifies the label of both keys'], ['-id', 'specifies the ID of both keys'],
      ['-sess', 'creates session keys'], ['-nex', 'makes the private key non-extractable'],
      ['-u', 'specifies the users to share the private key with (user IDs separated by ,)'],
      ['-m_value', 'specifies the number of users who must approve use of the private key'],
      ['-attest', 'performs the attestation check on the firmware response'], MIN_SRV, TIMEOUT]),
  genECCKeyPair: usageBlock('Generates an ECC key pair.',
    ['genECCKeyPair -h -i <EC curve id> -l <label>',
      '[-id <key ID>] [-sess] [-nex] [-u <user-ids>] [-m_value <0..8>] [-attest]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'],
      ['-i', 'specifies the curve ID\n2 = NID_X9_62_prime256v1, 14 = NID_secp384r1, 16 = NID_secp256k1'],
      ['-l', 'specifies the label of both keys'], ['-id', 'specifies the ID of both keys'],
      ['-sess', 'creates session keys'], ['-nex', 'makes the private key non-extractable'],
      ['-u', 'specifies the users to share the private key with (user IDs separated by ,)'],
      ['-m_value', 'specifies the number of users who must approve use of the private key'],
      ['-attest', 'performs the attestation check on the firmware response'], MIN_SRV, TIMEOUT]),
  findKey: usageBlock('Finds the keys the current user can use, by attribute value.',
    ['findKey -h [-c <key class>] [-t <key type>] [-l <key label>] [-id <key ID>]',
      '[-sess (0 | 1)] [-u <user-ids>] [-m <modulus file>] [-kcv <key check value>]'],
    [['-h', 'displays this information'], ['-c', 'specifies the key class (2 = public, 3 = private, 4 = secret)'],
      ['-t', 'specifies the key type (0 = RSA, 1 = DSA, 3 = EC, 16 = GENERIC_SECRET,\n18 = RC4, 21 = DES3, 31 = AES)'],
      ['-l', 'specifies the key label'], ['-id', 'specifies the key ID'],
      ['-sess', '1 finds session keys, 0 finds persistent keys'],
      ['-u', 'finds keys that the current user and all these users can use'],
      ['-m', 'specifies a file holding an RSA modulus (hex or binary)'],
      ['-kcv', 'specifies the key check value']]),
  getKeyInfo: usageBlock('Gets the owner of a key, the users it is shared with and its quorum.',
    ['getKeyInfo -h -k <key handle>'], [['-h', 'displays this information'], ['-k', 'specifies the key handle']]),
  getAttribute: usageBlock('Writes one or all attributes of a key to a file.',
    ['getAttribute -h -o <key handle> -a <attribute constant> -out <file>'],
    [['-h', 'displays this information'], ['-o', 'specifies the key handle'],
      ['-a', 'specifies the attribute (see listAttributes); 512 for all attributes'],
      ['-out', 'specifies the file to write the attributes to (overwritten without warning)']]),
  setAttribute: usageBlock('Converts a session key to a persistent key (sets OBJ_ATTR_TOKEN).',
    ['setAttribute -h -o <object handle> -a 1'],
    [['-h', 'displays this information'], ['-o', 'specifies the key handle'],
      ['-a', 'specifies the attribute; the only valid value is 1 (OBJ_ATTR_TOKEN)']]),
  deleteKey: usageBlock('Deletes a key from the HSMs. Only the owner of a key can delete it.',
    ['deleteKey -h -k <key handle>'], [['-h', 'displays this information'], ['-k', 'specifies the key handle']]),
  wrapKey: usageBlock('Exports an encrypted (wrapped) copy of a key to a file.',
    ['wrapKey -h -k <key to wrap> -w <wrapping key handle> -out <file> [-m <wrapping mechanism>]'],
    [['-h', 'displays this information'], ['-k', 'specifies the handle of the key to wrap'],
      ['-w', 'specifies the handle of the wrapping key'], ['-out', 'specifies the file to write the wrapped key to'],
      ['-m', 'specifies the wrapping mechanism\nNIST_AES_WRAP - 4 (default), RSA_AES - 7, RSA_OAEP - 8']]),
  unWrapKey: usageBlock('Imports a wrapped key from a file into the HSMs.',
    ['unWrapKey -h -f <wrapped key file> -w <unwrapping key handle> [-m <wrapping mechanism>]',
      '[-sess] [-nex] [-u <user-ids>] [-m_value <0..8>] [-l <label>] [-id <key ID>]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]',
      '[-noheader -l <label> -kc <key class> -kt <key type> [-id <key ID>]]'],
    [['-h', 'displays this information'], ['-f', 'specifies the file holding the wrapped key'],
      ['-w', 'specifies the handle of the unwrapping key'],
      ['-m', 'specifies the wrapping mechanism\nNIST_AES_WRAP - 4 (default), RSA_AES - 7, RSA_OAEP - 8'],
      ['-sess', 'creates a session key'], ['-nex', 'makes the key non-extractable'],
      ['-u', 'specifies the users to share the key with (user IDs separated by ,)'],
      ['-m_value', 'specifies the number of users who must approve use of the key'],
      ['-l', 'specifies a new label for the key'], ['-id', 'specifies a new ID for the key'], MIN_SRV, TIMEOUT,
      ['-noheader', 'the file holds only the wrapped key (wrapped outside key_mgmt_util);\n-l, -kc and -kt are then required'],
      ['-kc', 'specifies the class of the key (with -noheader)\n3 = private key, 4 = secret key'],
      ['-kt', 'specifies the type of the key (with -noheader)\n0 = RSA, 3 = ECC, 16 = GENERIC_SECRET, 21 = DES3, 31 = AES']]),
  exportPubKey: usageBlock('Exports a public key to a PEM file.',
    ['exportPubKey -h -k <public key handle> -out <key file>'],
    [['-h', 'displays this information'], ['-k', 'specifies the handle of the public key to export'],
      ['-out', 'specifies the PEM file to write']]),
  getCert: usageBlock('Gets a partition certificate of the HSM and saves it to a file (PEM).',
    ['getCert -h -f <file name> -t <certificate type>'],
    [['-h', 'displays this information'], ['-f', 'specifies the file to save the certificate to'],
      ['-t', 'specifies the certificate type (-s is taken too):\n1 = manufacturer root certificate, 2 = manufacturer hardware certificate,\n4 = customer root certificate, 8 = cluster certificate (signed by the customer root),\n16 = cluster certificate (chained to the manufacturer root)']]),
  aesWrapUnwrap: usageBlock('Wraps (encrypts) or unwraps (decrypts) the contents of a file with an AES key of the HSM\n(AES key wrap, RFC 3394).',
    ['aesWrapUnwrap -h -m <wrap-unwrap mode> -f <file> -w <wrapping key handle>', '[-i <wrapping IV>] [-out <output file>]'],
    [['-h', 'displays this information'], ['-m', 'specifies the mode: 1 = wrap, 0 = unwrap'],
      ['-f', 'specifies the file to wrap or unwrap (less than 4096 bytes)'],
      ['-w', 'specifies the handle of the AES wrapping key'],
      ['-i', 'specifies the IV in hex (default 0xA6A6A6A6A6A6A6A6)'],
      ['-out', 'specifies the output file (default wrapped_key or unwrapped_key)']]),
  exportPrivateKey: usageBlock('Exports a private key to a PEM file, wrapped on the way out with an AES key.',
    ['exportPrivateKey -h -k <private key handle> -w <wrapping key handle> -out <key file> [-m 4]'],
    [['-h', 'displays this information'], ['-k', 'specifies the handle of the private key to export'],
      ['-w', 'specifies the handle of the AES wrapping key'], ['-out', 'specifies the PEM file to write'],
      ['-m', 'specifies the wrapping mechanism; the only valid value is 4 (NIST_AES_WRAP)']]),
  exSymKey: usageBlock('Exports a plaintext copy of a symmetric key you own to a file: the HSM wraps it with an AES key\nand it is unwrapped again (by the HSM, or on the host with -wk).',
    ['exSymKey -h -k <key to export> -w <wrapping key handle> -out <key file>', '[-m 4] [-wk <unwrapping key file>]'],
    [['-h', 'displays this information'], ['-k', 'specifies the handle of the symmetric key to export'],
      ['-w', 'specifies the handle of the AES wrapping key'], ['-out', 'specifies the file to write the plaintext key to'],
      ['-m', 'specifies the wrapping mechanism; the only valid value is 4 (NIST_AES_WRAP)'],
      ['-wk', 'unwraps with the plaintext AES key of this file (the same key as -w)']]),
  imSymKey: usageBlock('Imports a plaintext symmetric key from a file: it is wrapped with an AES key (by the HSM,\nor on the host with -wk) and unwrapped into the HSM.',
    ['imSymKey -h -f <key file> -w <wrapping key handle> -t <key type> -l <label>',
      '[-id <key ID>] [-sess] [-wk <wrapping key file>] [-attest] [-u <user-ids>]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-f', 'specifies the file holding the plaintext key\n(AES: 16, 24 or 32 bytes; 3DES: 24 bytes)'],
      ['-w', 'specifies the handle of the AES wrapping key'], ['-t', 'specifies the key type: 21 = DES3, 31 = AES'],
      ['-l', 'specifies the label'], ['-id', 'specifies the key ID (unique in the cluster)'], ['-sess', 'creates a session key'],
      ['-wk', 'wraps with the plaintext AES key of this file (the same key as -w)'],
      ['-attest', 'checks the firmware\'s attestation'], ['-u', 'specifies the users to share the key with (user IDs separated by ,)'],
      MIN_SRV, TIMEOUT]),
  importPrivateKey: usageBlock('Imports a PEM private key (RSA or EC) from a file: it is wrapped with an AES key (by the HSM,\nor on the host with -wk) and unwrapped into the HSM.',
    ['importPrivateKey -h -l <label> -f <key file> -w <wrapping key handle>',
      '[-sess] [-id <key ID>] [-m_value <0..8>] [-u <user-ids>] [-wk <wrapping key file>] [-attest]',
      '[-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-l', 'specifies the label'], ['-f', 'specifies the PEM file of the private key'],
      ['-w', 'specifies the handle of the AES wrapping key'], ['-sess', 'creates a session key'], ['-id', 'specifies the key ID'],
      ['-m_value', 'specifies the number of users who must approve use of the key'],
      ['-u', 'specifies the users to share the key with (user IDs separated by ,)'],
      ['-wk', 'wraps with the plaintext AES key of this file (the same key as -w)'], ['-attest', 'checks the firmware\'s attestation'],
      MIN_SRV, TIMEOUT]),
  importPubKey: usageBlock('Imports a PEM public key (RSA or EC, -----BEGIN PUBLIC KEY-----) from a file.',
    ['importPubKey -h -l <label> -f <key file>', '[-sess] [-id <key ID>] [-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-l', 'specifies the label'], ['-f', 'specifies the PEM file of the public key'],
      ['-sess', 'creates a session key'], ['-id', 'specifies the key ID'], MIN_SRV, TIMEOUT]),
  findSingleKey: usageBlock('Checks that a key is on every HSM of the cluster, the same on each.',
    ['findSingleKey -h -k <key handle>'],
    [['-h', 'displays this information'], ['-k', 'specifies the key handle']]),
  sign: usageBlock('Generates a signature of a file with a private key.',
    ['sign -h -f <message file> -k <private key handle> -m <signature mechanism> -out <signature file>'],
    [['-h', 'displays this information'], ['-f', 'specifies the message file'], ['-k', 'specifies the private key handle'],
      ['-m', `specifies the signature mechanism\n${SIGN_MECHANISMS}`], ['-out', 'specifies the file to write the signature to']]),
  verify: usageBlock('Verifies the signature of a file with a public key.',
    ['verify -h -f <message file> -s <signature file> -k <public key handle> -m <signature mechanism>'],
    [['-h', 'displays this information'], ['-f', 'specifies the message file'], ['-s', 'specifies the signature file'],
      ['-k', 'specifies the public key handle'], ['-m', `specifies the signature mechanism\n${SIGN_MECHANISMS}`]]),
  extractMaskedObject: usageBlock('Extracts a key as a masked object (encrypted with the cluster\'s masking key) to a file.',
    ['extractMaskedObject -h -o <object handle> -out <object file>'],
    [['-h', 'displays this information'], ['-o', 'specifies the handle of the key to extract'],
      ['-out', 'specifies the file to write the masked object to']]),
  insertMaskedObject: usageBlock('Inserts a masked object into the HSMs; the key gets a new handle.',
    ['insertMaskedObject -h -f <object file> [-min_srv <minimum number of servers>] [-timeout <number of seconds>]'],
    [['-h', 'displays this information'], ['-f', 'specifies the masked object file'], MIN_SRV, TIMEOUT]),
  listUsers: usageBlock('Lists the users of the HSMs (all HSMs as one list).', ['listUsers -h'], [['-h', 'displays this information']]),
  listAttributes: usageBlock('Lists the attributes getAttribute knows and their constants.', ['listAttributes -h'], [['-h', 'displays this information']]),
  Error2String: usageBlock('Converts a key_mgmt_util return code to its text.',
    ['Error2String -h -r <response code>'],
    [['-h', 'displays this information'], ['-r', 'specifies the code in hexadecimal, with its 0x prefix (0xdb)']])
}

/** The output of `help`, as on the AWS help page. */
export const HELP_TEXT = `
Help Commands Available:

Syntax: <command> -h


   Command               Description
   =======               ===========

   exit                   Exits this application
   help                   Displays this information

        Configuration and Admin Commands
   getHSMInfo             Gets the HSM Information
   getPartitionInfo       Gets the Partition Information
   listUsers              Lists all users of a partition
   loginStatus            Gets the Login Information
   loginHSM               Login to the HSM
   logoutHSM              Logout from the HSM

        M of N commands
   getToken               Initiate an MxN service and get Token
   delToken               delete Token(s)
   approveToken           Approves an MxN service
   listTokens             List all Tokens in the current partition

        Key Generation Commands

        Asymmetric Keys:
   genRSAKeyPair          Generates an RSA Key Pair
   genDSAKeyPair          Generates a DSA Key Pair
   genECCKeyPair          Generates an ECC Key Pair

        Symmetric Keys:
   genPBEKey              Generates a PBE DES3 key
   genSymKey              Generates a Symmetric keys

        Key Import/Export Commands
   createPublicKey        Creates an RSA public key
   importPubKey           Imports RSA/DSA/EC Public key
   exportPubKey           Exports RSA/DSA/EC Public key
   importPrivateKey       Imports RSA/DSA/EC private key
   exportPrivateKey       Exports RSA/DSA/EC private key
   imSymKey               Imports a Symmetric key
   exSymKey               Exports a Symmetric key
   wrapKey                Wraps a key from from HSM using the specified handle
   unWrapKey              UnWraps a key into HSM using the specified handle

        Key Management Commands
   deleteKey              Delete Key
   setAttribute           Sets an attribute of an object
   getKeyInfo             Get Key Info about shared users/sessions
   findKey                Find Key
   findSingleKey          Find single Key
   getAttribute           Reads an attribute from an object

        Certificate Setup Commands
   getCert                Gets Partition Certificates stored on HSM

        Key Transfer Commands
   insertMaskedObject     Inserts a masked object
   extractMaskedObject    Extracts a masked object

        Management Crypto Commands
   sign                   Generates a signature
   verify                 Verifies a signature
   aesWrapUnwrap          Does NIST AES Wrap/Unwrap

        Helper Commands
   Error2String           Converts Error codes to Strings
                          save key handle in fake PEM format
   getCaviumPrivKey       Saves an RSA private key handle
                          in fake PEM format
   IsValidKeyHandlefile   Checks if private key file has
                          an HSM key handle or a real key
   listAttributes         List all attributes for getAttributes
   listECCCurveIds        List HSM supported ECC CurveIds
`

/** Commands the help list names that hsmlab does not simulate (they answer with a clear error). */
export const UNSIMULATED_COMMANDS: readonly string[] = [
  'getHSMInfo', 'getPartitionInfo', 'loginStatus', 'getToken', 'delToken', 'approveToken', 'listTokens',
  'genDSAKeyPair', 'genPBEKey', 'createPublicKey', 'getCaviumPrivKey', 'IsValidKeyHandlefile', 'listECCCurveIds'
]
