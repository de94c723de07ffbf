/**
 * The Markdown files of an exercise, read the way a trainer writes them (docs/exercises.md):
 *
 * - task.md: an introduction, then one `## ` section per step, in the order of exercise.json;
 * - hints.md: one `## ` section per step, each a numbered list (`1. `), each hint a little more direct;
 * - solution.md and mistakes.md: `## ` sections whose fenced blocks are what a learner types:
 *   ```` ```sh ```` shell lines; ```` ```cmu ARGS ```` the lines typed into `cloudhsm_mgmt_util ARGS`;
 *   ```` ```kmu ARGS ```` the lines typed into `key_mgmt_util ARGS`. In mistakes.md a line
 *   `Check says: TEXT` gives what `check` must say after that attempt.
 */

/** One `## ` section: its heading and its body. */
export interface Section {
  heading: string
  body: string
}

/** A document: the text before the first `## ` heading, and the sections. */
export interface Sections {
  intro: string
  sections: Section[]
}

/** Splits a Markdown document at its `## ` headings (not inside fenced blocks). */
export function sectionsOf (text: string): Sections {
  const out: Sections = { intro: '', sections: [] }
  let current: Section | undefined
  let fenced = false
  const lines: string[] = []
  const flush = (): void => {
    const body = lines.join('\n').trim()
    if (current === undefined) out.intro = body
    else current.body = body
    lines.length = 0
  }
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    if (!fenced && line.startsWith('## ')) {
      flush()
      current = { heading: line.slice(3).trim(), body: '' }
      out.sections.push(current)
      continue
    }
    lines.push(line)
  }
  flush()
  return out
}

/** The items of the numbered list of a section (`1. text`, continued on the lines below). */
export function numberedItems (body: string): string[] {
  const items: string[] = []
  for (const line of body.split('\n')) {
    const item = /^\d+\.\s+(.*)$/.exec(line)
    if (item !== null) items.push(item[1] as string)
    else if (items.length > 0 && line.trim() !== '') items[items.length - 1] += ` ${line.trim()}`
  }
  return items
}

/** A block of what a learner types. */
export type TypedBlock =
  | { kind: 'sh', lines: string[] }
  /** `args`: the shell words after the program's name (a configuration file, may use shell variables). */
  | { kind: 'cmu' | 'kmu', args: string, lines: string[] }

/** The program each kind of block types into. */
export const PROGRAM_OF = { cmu: 'cloudhsm_mgmt_util', kmu: 'key_mgmt_util' } as const

/** The fenced blocks of a section body that are typed (sh, cmu, kmu), in order; others are left out. */
export function typedBlocks (body: string): TypedBlock[] {
  const blocks: TypedBlock[] = []
  let open: { info: string, lines: string[] } | undefined
  for (const line of body.split('\n')) {
    if (line.startsWith('```')) {
      if (open === undefined) { open = { info: line.slice(3).trim(), lines: [] }; continue }
      const [kind, ...args] = open.info.split(/\s+/)
      if (kind === 'sh') blocks.push({ kind, lines: open.lines })
      else if (kind === 'cmu' || kind === 'kmu') blocks.push({ kind, args: args.join(' '), lines: open.lines })
      open = undefined
      continue
    }
    open?.lines.push(line)
  }
  return blocks
}

/** A block as a learner sees it typed: `$ ` before shell lines, the program's command line, then what is typed into it. */
export function formatBlock (block: TypedBlock): string {
  if (block.kind === 'sh') return block.lines.map(l => `$ ${l}`).join('\n')
  return [`$ ${PROGRAM_OF[block.kind]}${block.args === '' ? '' : ` ${block.args}`}`, ...block.lines.map(l => `  ${l}`)].join('\n')
}

/** `Check says: TEXT` lines of a mistakes.md section. */
export function expectedReasons (body: string): string[] {
  return [...body.matchAll(/^Check says:\s*(.+)$/gm)].map(m => (m[1] as string).trim())
}
