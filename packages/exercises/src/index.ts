/**
 * @packageDocumentation
 * Training exercises (docs/exercises.md): broken labs that a learner repairs with the documented
 * commands. An exercise is a folder (exercise.json, task.md, hints.md, solution.md, mistakes.md,
 * checks.js); `startExercise` builds its lab and breaks it as its setup says, reproducibly from a
 * seed; `checkExercise` runs its checks against the live HSMs and control planes through the
 * check API (`CheckLab`), each failing one with reasons that name what is still wrong.
 * `hsmlab exercise ...` is the `main` of this package's bin.
 *
 * @example
 * ```ts
 * import { checkExercise, startExercise } from '@hsmlab/exercises'
 * await startExercise({ name: 'desync-user', dir: '/tmp/ex', seed: 7 })
 * const result = await checkExercise({ dir: '/tmp/ex' })
 * result.steps[0]?.reasons  // ["bob's password Bob98765 does not work on server 2 (hsm-...): RET_USER_LOGIN_FAILURE ..."]
 * ```
 */
export {
  awsEnvFile, checkExercise, listExercises, nextHint, openExercise, resetExercise, runExerciseSchedule, showExercise, solutionOf, startExercise, taskOf, writeLearnerFiles
} from './exercise-runner.js'
export type { CheckResult, ExerciseLocation, ExerciseState, ExerciseSummary, Hint, Shown, StartOptions, Started, StepResult } from './exercise-runner.js'
export { CheckLab, ClusterView, serversOf } from './check-api.js'
export type { BackupSummary, CheckLabInit, ClusterSummary, HsmAnswer, HsmRef, KeyDetails, KeysOf, LoginOutcome, StepCheck, SyncRecord } from './check-api.js'
export { EXERCISE_FILES, LEVELS, credentialsOf, exerciseNames, folderOf, loadChecks, readExercise, typedSections, valuesFor } from './exercise-folder.js'
export type { ExerciseDefinition, ExerciseStep, TypedSection } from './exercise-folder.js'
export type { Credential } from './credential.js'
export { PROGRAM_OF, formatBlock, sectionsOf, typedBlocks } from './markdown.js'
export type { Section, Sections, TypedBlock } from './markdown.js'
export { drawValue, newSeed, substitute, substituteJson } from './seeded-values.js'
export type { ExerciseValue, RandomSpec } from './seeded-values.js'
export { checkSetupStep, runSetup } from './setup.js'
export { SCHEDULE_SECONDS_MAX, checkScheduleEntry, scheduleLogFile } from './fault-schedule.js'
export type { ScheduledFault } from './fault-schedule.js'
export type { SetupContext, SetupStep } from './setup.js'
export { EXERCISES_DIR, exerciseDefaults } from './defaults.js'
export {
  ExerciseError, EXERCISE_ERROR_CODES, EXERCISE_ERR_CHECK, EXERCISE_ERR_INVALID, EXERCISE_ERR_NOT_STARTED, EXERCISE_ERR_SETUP, EXERCISE_ERR_UNKNOWN, EXERCISE_ERR_USAGE
} from './errors.js'
export { main } from './bin/hsmlab-exercise.js'
export type { MainIo } from './bin/hsmlab-exercise.js'
