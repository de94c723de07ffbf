/**
 * Command-name abbreviation, for both shells: "enter the command name, or enough of the name to
 * distinguish it from the names of other commands. For example ... enter listUsers or listU"
 * (reference A.1).
 *
 * Matching ignores case unless asked not to (`listusers`, `LISTU` work): a person typing into a lab
 * should not fail on the case of a command name, and no two commands of either tool differ only by
 * case. An exact name always wins over longer names it is a prefix of.
 */

/** Options of `resolveAbbreviation`. */
export interface AbbreviationOptions {
  /** Compare case-sensitively. @default false */
  caseSensitive?: boolean
}

/** What a typed name resolves to. */
export type AbbreviationMatch =
  | { kind: 'match', name: string }
  | { kind: 'ambiguous', candidates: string[] }
  | { kind: 'unknown' }

/** Finds the one name in `names` that `typed` names or abbreviates. */
export function resolveAbbreviation (typed: string, names: readonly string[], options: AbbreviationOptions = {}): AbbreviationMatch {
  if (typed === '') return { kind: 'unknown' }
  const fold = options.caseSensitive === true ? (s: string): string => s : (s: string): string => s.toLowerCase()
  const wanted = fold(typed)
  const exact = names.find(name => fold(name) === wanted)
  if (exact !== undefined) return { kind: 'match', name: exact }
  const candidates = names.filter(name => fold(name).startsWith(wanted))
  if (candidates.length === 1) return { kind: 'match', name: candidates[0] as string }
  if (candidates.length > 1) return { kind: 'ambiguous', candidates }
  return { kind: 'unknown' }
}
