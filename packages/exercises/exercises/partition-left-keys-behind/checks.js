// Checks of partition-left-keys-behind (docs/exercises.md "The check API").
export default {
  'clone-holds-alices-keys': async (lab) => {
    const [source] = await (await lab.cluster('us-east-1/primary')).keys('alice')
    if (!source?.ok) return [`cannot read alice's keys on us-east-1/primary: ${source?.error ?? 'no HSM'}`]
    const want = source.value.handles
    const reasons = []
    for (const a of await (await lab.cluster('us-west-2/dr')).keys('alice')) {
      if (!a.ok) { reasons.push(`cannot read us-west-2/dr ${a.label}: ${a.error}`); continue }
      const missing = want.filter(h => !a.value.handles.includes(h))
      const extra = a.value.handles.filter(h => !want.includes(h))
      if (missing.length > 0) reasons.push(`${missing.length} of alice's keys are missing on us-west-2/dr ${a.label}: ${missing.join(', ')}`)
      if (extra.length > 0) reasons.push(`us-west-2/dr ${a.label} has keys of alice the primary does not: ${extra.join(', ')} (a copy under a new handle? syncKey keeps the handle)`)
      if (missing.length === 0 && extra.length === 0 && a.value.hash !== source.value.hash) reasons.push(`the key hash of us-west-2/dr ${a.label} differs from the primary's`)
    }
    return reasons
  }
}
