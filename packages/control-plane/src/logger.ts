/** Structured logs (pino; see @hsmlab/process): this package's modules log as `hsmlab:control-plane:<name>`. */
import { componentLoggers } from '@hsmlab/process'

export { LOG_LEVELS, createLogger } from '@hsmlab/process'
export type { Logger } from '@hsmlab/process'

/** A child logger for one module, `hsmlab:control-plane:<name>`. */
export const forComponent = componentLoggers('hsmlab:control-plane')
