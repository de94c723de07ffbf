import { randomBytes } from '@hsmlab/crypto'

// The alphabet of AWS resource ids (`hsm-lgavqitns2a`, `cluster-jxhlf7644ne`): RFC 4648 base32, lower case.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

/** `count` random characters of [a-z2-7]; 32 symbols, so masking a byte keeps them uniform. */
export function randomBase32 (count: number): string {
  let out = ''
  for (const byte of randomBytes(count)) out += ALPHABET[byte & 31]
  return out
}

/** A fresh id in the AWS style: `cluster-`, `hsm-` or `backup-` followed by 11 characters of [a-z2-7]. */
export function randomResourceId (prefix: 'cluster' | 'hsm' | 'backup'): string {
  return `${prefix}-${randomBase32(11)}`
}

/** True for an id `randomResourceId(prefix)` could have made (AWS also allows 12–16 characters and upper case). */
export function isResourceId (prefix: 'cluster' | 'hsm' | 'backup', id: string): boolean {
  return new RegExp(`^${prefix}-[2-7a-zA-Z]{11,16}$`).test(id)
}
