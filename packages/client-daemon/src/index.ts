/**
 * @packageDocumentation
 * The client daemon (`hsmlab-client`, like CloudHSM Client SDK 3's `cloudhsm_client`): one per
 * cluster, holding the encrypted connections to its HSMs and serving the PKCS#11 library
 * (`libhsmlab_pkcs11.so`, packages/pkcs11) on an owner-only Unix socket. docs/pkcs11.md tells
 * the socket protocol, the mechanisms and the return values.
 *
 * @example
 * ```ts
 * import { readCmuConfig } from '@hsmlab/client'
 * import { startClientDaemon } from '@hsmlab/client-daemon'
 * import { silentLogger } from '@hsmlab/process'
 * const { servers } = await readCmuConfig('.hsmlab/us-east-1-primary.cfg')
 * const daemon = await startClientDaemon({ servers, socketPath: '/tmp/hsmlab.sock', logger: silentLogger() })
 * await daemon.stop()
 * ```
 */
export { ClientDaemon, applicationToken, startClientDaemon } from './client-daemon.js'
export type { ClientDaemonOptions } from './client-daemon.js'
export { clientDaemonDefaults } from './defaults.js'
export { ClientDaemonError, CLIENT_DAEMON_ERR_FRAME, CLIENT_DAEMON_ERR_LISTEN, CLIENT_DAEMON_ERROR_CODES } from './errors.js'
export { Ckr, RETURN_VALUE_TABLE, returnValueOf } from './return-values.js'
export type { OperationKind } from './return-values.js'
export { Fields, FrameReader, Op, Tag, decodeFields, encodeRequest, encodeResponse, nativeUlong, u64 } from './wire.js'
export type { Field } from './wire.js'

/** Absolute path of the `hsmlab-client` launcher, for the lab. */
export const CLIENT_DAEMON_BIN_PATH: string = new URL('../bin/hsmlab-client.js', import.meta.url).pathname

/**
 * Absolute path of libhsmlab_pkcs11.so as the workspace builds it (packages/pkcs11/build), unless
 * HSMLAB_PKCS11_MODULE names another (an installed copy).
 */
export const PKCS11_MODULE_PATH: string = process.env.HSMLAB_PKCS11_MODULE ?? new URL('../../pkcs11/build/libhsmlab_pkcs11.so', import.meta.url).pathname
