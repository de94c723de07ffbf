/**
 * Key attributes (OBJ_ATTR_*), key classes and key types, as the real tools number them
 * (shared/reference/cloudhsm.md, C.1). The HSM stores attributes by these ids; CMU's
 * listAttributes prints them in `CMU_ATTRIBUTE_ORDER`.
 */
export const Attribute = {
  CLASS: 0,
  TOKEN: 1,
  PRIVATE: 2,
  LABEL: 3,
  TRUSTED: 134,
  KEY_TYPE: 256,
  ID: 258,
  SENSITIVE: 259,
  ENCRYPT: 260,
  DECRYPT: 261,
  WRAP: 262,
  UNWRAP: 263,
  SIGN: 264,
  VERIFY: 266,
  DERIVE: 268,
  MODULUS: 288,
  MODULUS_BITS: 289,
  PUBLIC_EXPONENT: 290,
  VALUE_LEN: 353,
  EXTRACTABLE: 354,
  LOCAL: 355,
  NEVER_EXTRACTABLE: 356,
  ALWAYS_SENSITIVE: 357,
  DESTROYABLE: 370,
  KCV: 371,
  ALL: 512,
  WRAP_WITH_TRUSTED: 528,
  WRAP_TEMPLATE: 1073742353,
  UNWRAP_TEMPLATE: 1073742354
} as const

/** `OBJ_ATTR_<NAME>` for an attribute id, or undefined. */
export function attributeName (id: number): string | undefined {
  for (const [name, value] of Object.entries(Attribute)) if (value === id) return `OBJ_ATTR_${name}`
  return undefined
}

/** The order of CMU's listAttributes. */
export const CMU_ATTRIBUTE_ORDER: readonly number[] = [
  Attribute.CLASS, Attribute.TOKEN, Attribute.PRIVATE, Attribute.LABEL, Attribute.TRUSTED, Attribute.KEY_TYPE,
  Attribute.ID, Attribute.SENSITIVE, Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP,
  Attribute.SIGN, Attribute.VERIFY, Attribute.DERIVE, Attribute.LOCAL, Attribute.MODULUS, Attribute.MODULUS_BITS,
  Attribute.PUBLIC_EXPONENT, Attribute.VALUE_LEN, Attribute.EXTRACTABLE, Attribute.NEVER_EXTRACTABLE,
  Attribute.ALWAYS_SENSITIVE, Attribute.DESTROYABLE, Attribute.KCV, Attribute.WRAP_WITH_TRUSTED,
  Attribute.WRAP_TEMPLATE, Attribute.UNWRAP_TEMPLATE, Attribute.ALL
]

/** Attributes CMU's setAttribute may change (the key's owner only). */
export const CMU_SETTABLE_ATTRIBUTES: readonly number[] = [
  Attribute.LABEL, Attribute.TRUSTED, Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP,
  Attribute.SIGN, Attribute.VERIFY, Attribute.DERIVE, Attribute.DESTROYABLE, Attribute.WRAP_WITH_TRUSTED,
  Attribute.WRAP_TEMPLATE, Attribute.UNWRAP_TEMPLATE
]

/** OBJ_ATTR_CLASS values. */
export const KeyClass = { PUBLIC: 2, PRIVATE: 3, SECRET: 4 } as const

/** OBJ_ATTR_KEY_TYPE values. */
export const KeyType = { RSA: 0, DSA: 1, EC: 3, GENERIC_SECRET: 16, RC4: 18, DES3: 21, AES: 31 } as const

/** genECCKeyPair `-i` curve ids and their OpenSSL names. */
export const EC_CURVES: Readonly<Record<number, string>> = {
  2: 'prime256v1',
  13: 'secp224r1',
  14: 'secp384r1',
  15: 'secp521r1',
  16: 'secp256k1'
}
