// Checks of remove-departed-user: the example of docs/exercises.md.
export default {
  'mallory-gone': async (lab) => {
    const cluster = await lab.cluster('us-east-1/training')
    const reasons = []
    for (const a of await cluster.user('mallory')) {
      if (!a.ok) reasons.push(`could not list the users of ${a.label}: ${a.error}`)
      else if (a.value !== undefined) reasons.push(`mallory still exists on ${a.label}`)
    }
    return reasons
  },
  'alice-stays': async (lab) => {
    const cluster = await lab.cluster('us-east-1/training')
    const reasons = []
    for (const a of await cluster.user('alice')) {
      if (a.ok && a.value === undefined) reasons.push(`alice is gone from ${a.label}: she still works here (make her again with createUser, and tell her her new password)`)
    }
    return reasons
  }
}
