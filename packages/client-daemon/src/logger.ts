/** Structured logs (pino; see @hsmlab/process): this package's modules log as `hsmlab:client-daemon:<name>`. */
import { componentLoggers } from '@hsmlab/process'

/** A child logger for one module, `hsmlab:client-daemon:<name>`. */
export const forComponent = componentLoggers('hsmlab:client-daemon')
