/**
 * Errors of the exercises. Callers (the `hsmlab exercise` bin, tests) branch on `code`, never on
 * the class; every code is listed in `EXERCISE_ERROR_CODES` and documented in docs/errors.md, and
 * a unit test keeps the two in step.
 */
export class ExerciseError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'ExerciseError'
  }
}

/** The command line cannot be understood (unknown subcommand or option, a missing exercise name). */
export const EXERCISE_ERR_USAGE = 'EXERCISE_ERR_USAGE'
/** No exercise of that name in the exercises' folder. */
export const EXERCISE_ERR_UNKNOWN = 'EXERCISE_ERR_UNKNOWN'
/** An exercise folder is incomplete or one of its files is not valid (names the file and what is wrong). */
export const EXERCISE_ERR_INVALID = 'EXERCISE_ERR_INVALID'
/** The lab directory holds no running exercise (`hsmlab exercise start NAME` first). */
export const EXERCISE_ERR_NOT_STARTED = 'EXERCISE_ERR_NOT_STARTED'
/** A setup step of the exercise failed against the lab (names the step). */
export const EXERCISE_ERR_SETUP = 'EXERCISE_ERR_SETUP'
/** A check could not run (it threw, or took longer than its time limit); reported as a reason of its step. */
export const EXERCISE_ERR_CHECK = 'EXERCISE_ERR_CHECK'

/** Every code above. */
export const EXERCISE_ERROR_CODES: readonly string[] = [
  EXERCISE_ERR_USAGE, EXERCISE_ERR_UNKNOWN, EXERCISE_ERR_INVALID, EXERCISE_ERR_NOT_STARTED, EXERCISE_ERR_SETUP, EXERCISE_ERR_CHECK
]
