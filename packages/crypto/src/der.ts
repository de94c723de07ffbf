/**
 * A minimal DER writer for the few X.509 structures hsmlab builds with node:crypto (the control
 * plane's ClusterCsr, the lab's customer CA): node:crypto signs and verifies, but has no API to
 * write a certificate or a certificate signing request.
 */

function derLength (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** One DER element: tag, length, content. */
export function derTlv (tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content])
}

/** SEQUENCE of the given elements. */
export const derSequence = (...items: Buffer[]): Buffer => derTlv(0x30, Buffer.concat(items))
/** SET of the given elements. */
export const derSet = (...items: Buffer[]): Buffer => derTlv(0x31, Buffer.concat(items))
/** UTF8String. */
export const derUtf8String = (text: string): Buffer => derTlv(0x0c, Buffer.from(text, 'utf8'))
/** PrintableString. */
export const derPrintableString = (text: string): Buffer => derTlv(0x13, Buffer.from(text, 'ascii'))

/** OBJECT IDENTIFIER from its dotted form. */
export function derOid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const bytes: number[] = [(parts[0] ?? 0) * 40 + (parts[1] ?? 0)]
  for (const part of parts.slice(2)) {
    const chunk: number[] = []
    let v = part
    do { chunk.unshift(v & 0x7f); v = Math.floor(v / 128) } while (v > 0)
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] ?? 0) | 0x80
    bytes.push(...chunk)
  }
  return derTlv(0x06, Buffer.from(bytes))
}

/** PEM armour of DER bytes, 64 base64 characters a line. */
export function toPem (label: string, der: Buffer): string {
  const body = der.toString('base64').replace(/.{1,64}/g, line => `${line}\n`)
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`
}
