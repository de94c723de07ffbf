/**
 * Splitting a typed command line into words, for both shells.
 *
 * Words are separated by spaces and tabs. A word that starts with `"` or `'` runs to the matching
 * quote and may hold spaces (`createUser CU bob "my password"`); the quotes are removed. A quote
 * inside a word is an ordinary character (`it's1234` is one word), so passwords and paths the real
 * tools accept unquoted keep working. There are no backslash escapes: Windows-style paths
 * (`C:\ProgramData\...`) stay as typed.
 */

/** The words of a command line, or why it could not be split. */
export type CommandLineWords =
  | { ok: true, words: string[] }
  | { ok: false, error: string }

/** Splits `line` into words (see the module comment); an unterminated quote is an error. */
export function splitCommandLine (line: string): CommandLineWords {
  const words: string[] = []
  let i = 0
  const n = line.length
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n'
  while (i < n) {
    while (i < n && isSpace(line[i])) i++
    if (i >= n) break
    let word = ''
    const first = line[i]
    if (first === '"' || first === "'") {
      const close = line.indexOf(first, i + 1)
      if (close < 0) return { ok: false, error: `unterminated quote (${first}) in the command line` }
      word = line.slice(i + 1, close)
      i = close + 1
    }
    while (i < n && !isSpace(line[i])) word += line[i++]
    words.push(word)
  }
  return { ok: true, words }
}
