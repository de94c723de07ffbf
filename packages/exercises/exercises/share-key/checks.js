// Checks of share-key (docs/exercises.md "The check API").
const keyOf = (lab) => lab.values.key[0]

export default {
  'bob-shares': async (lab) => {
    const key = keyOf(lab)
    const cluster = await lab.cluster('us-east-1/training')
    const reasons = []
    for (const a of await cluster.keyInfo(key)) {
      if (!a.ok) reasons.push(`could not read key ${key} on ${a.label}: ${a.error}`)
      else if (a.value === undefined) reasons.push(`key ${key} is gone from ${a.label}`)
      else if (a.value.owner !== 'alice') reasons.push(`key ${key} is owned by ${a.value.owner} on ${a.label}; it must stay alice's`)
      else if (!a.value.sharedWith.includes('bob')) {
        reasons.push(`bob is not a shared user of key ${key} on ${a.label} (shared with: ${a.value.sharedWith.join(', ') || 'nobody'})`)
      }
    }
    return reasons
  },
  'bob-cannot-delete': async (lab) => {
    const key = keyOf(lab)
    const cluster = await lab.cluster('us-east-1/training')
    const reasons = []
    for (const a of await cluster.deleteRefused('bob', 'Bob12345', key)) {
      if (!a.ok) reasons.push(`could not try as bob on ${a.label}: ${a.error}`)
      else if (!a.value.refused) reasons.push(`bob deleted key ${key} on ${a.label}: it was his to delete`)
      else if (/INVALID_HANDLE/.test(a.value.answer)) reasons.push(`bob cannot see key ${key} on ${a.label} at all (${a.value.answer}); share it with him first`)
    }
    return reasons
  }
}
