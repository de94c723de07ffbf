// Checks of dr-copy-and-clone (docs/exercises.md "The check API").

/** The READY copies in us-west-2 of backups of us-east-1. */
async function copies (lab) {
  return (await lab.backups('us-west-2')).filter(b => b.sourceRegion === 'us-east-1' && b.state === 'READY')
}

/** The clusters of us-west-2 made from one of those copies. */
async function clones (lab) {
  const ids = new Set((await copies(lab)).map(b => b.id))
  return (await lab.clusters('us-west-2')).filter(c => c.sourceBackupId !== null && ids.has(c.sourceBackupId))
}

export default {
  'copy-ready': async (lab) => {
    const all = (await lab.backups('us-west-2')).filter(b => b.sourceRegion === 'us-east-1')
    if (all.length === 0) return ['us-west-2 has no backup copied from us-east-1 (copy-backup-to-region, against us-east-1)']
    if (!all.some(b => b.state === 'READY')) return [`the copy ${all.map(b => `${b.id} is ${b.state}`).join(', ')}; wait until it is READY`]
    return []
  },
  'cluster-active': async (lab) => {
    const made = await clones(lab)
    if (made.length === 0) return ['us-west-2 has no cluster made from a copy of a us-east-1 backup (create-cluster --source-backup-id <the copy>)']
    const reasons = []
    for (const c of made) {
      const active = c.hsms.filter(h => h.state === 'ACTIVE').length
      if (c.state === 'ACTIVE' && active === 2 && c.hsms.length === 2) return []
      reasons.push(`cluster ${c.id} is ${c.state} with ${active} ACTIVE HSM${active === 1 ? '' : 's'} of ${c.hsms.length}; it needs 2 (create-hsm)`)
    }
    return reasons
  },
  'keys-there': async (lab) => {
    const [source] = await (await lab.cluster('us-east-1/primary')).keys('alice')
    if (!source?.ok) return [`cannot read alice's keys on us-east-1/primary: ${source?.error ?? 'no HSM'}`]
    const made = (await clones(lab)).filter(c => c.state === 'ACTIVE')
    if (made.length === 0) return ['there is no ACTIVE cluster made from the copy yet']
    const copied = new Map((await copies(lab)).map(b => [b.id, b.sourceBackupId]))
    const reasons = []
    for (const c of made) {
      const cluster = await lab.cluster(c.id)
      const answers = await cluster.keys('alice')
      const short = answers.filter(a => !a.ok || source.value.handles.some(h => !a.value.handles.includes(h)))
      if (short.length === 0 && answers.length >= 2) return []
      for (const a of short) {
        if (!a.ok) { reasons.push(`cannot read cluster ${c.id} ${a.label}: ${a.error}`); continue }
        const missing = source.value.handles.filter(h => !a.value.handles.includes(h))
        const from = copied.get(c.sourceBackupId)
        const stale = from !== lab.values.latestBackup ? `: it was made from a copy of ${from}, not the latest backup of primary (${lab.values.latestBackup})` : ''
        reasons.push(`alice's keys ${missing.join(', ')} are missing on cluster ${c.id} ${a.label}${stale}`)
      }
    }
    return reasons
  }
}
