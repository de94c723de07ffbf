// Checks of desync-user (docs/exercises.md "The check API").
export default {
  'bob-agrees': async (lab) => {
    const cluster = await lab.cluster('us-east-1/training')
    const tries = await cluster.tryLogin('CU', 'bob', 'Bob98765')
    const reasons = []
    for (const t of tries) {
      if (!t.ok) reasons.push(`could not reach ${t.label}: ${t.error}`)
      else if (!t.value.ok) reasons.push(`Expected bob's credentials to agree on every HSM; Bob98765 does not work on ${t.label} (${t.value.reason})`)
    }
    return reasons
  }
}
