/** A user whose name and password the learner is given (exercise.json `credentials`; `show` prints them). */
export interface Credential {
  /** `region/cluster` of the lab; absent: every cluster of the lab. */
  cluster?: string
  type: 'CO' | 'CU'
  name: string
  password: string
}
