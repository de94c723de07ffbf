// Checks of replace-failed-hsm (docs/exercises.md "The check API").
export default {
  'three-active': async (lab) => {
    const [training] = (await lab.clusters('us-east-1')).filter(c => c.name === 'training')
    if (training === undefined) return ['us-east-1/training is gone']
    const active = training.hsms.filter(h => h.state === 'ACTIVE').length
    const reasons = []
    if (active !== 3) {
      const others = training.hsms.filter(h => h.state !== 'ACTIVE').map(h => `${h.id} is ${h.state}`)
      reasons.push(`us-east-1/training has ${active} ACTIVE HSMs, not 3${others.length > 0 ? ` (${others.join(', ')})` : ''}`)
    }
    for (const c of await lab.clusters('us-east-1')) {
      if (c.name === 'staging' && c.hsms.length !== 3) reasons.push(`us-east-1/staging has ${c.hsms.length} HSMs now, it had 3: the replacement belongs in training (${training.id})`)
    }
    return reasons
  },
  'same-keys': async (lab) => {
    const answers = await (await lab.cluster('us-east-1/training')).keys('alice')
    const reasons = []
    for (const a of answers) if (!a.ok) reasons.push(`cannot read alice's keys on ${a.label}: ${a.error}`)
    const ok = answers.filter(a => a.ok)
    const hashes = new Set(ok.map(a => a.value.hash))
    if (ok.length < 3) reasons.push(`only ${ok.length} HSMs of us-east-1/training answer; it needs 3`)
    else if (hashes.size > 1) {
      const [first] = ok
      for (const a of ok.slice(1)) {
        const missing = first.value.handles.filter(h => !a.value.handles.includes(h))
        if (a.value.hash !== first.value.hash) reasons.push(`the key hash of ${a.label} differs from ${first.label}'s${missing.length > 0 ? ` (it lacks ${missing.join(', ')})` : ''}`)
      }
    }
    return reasons
  }
}
