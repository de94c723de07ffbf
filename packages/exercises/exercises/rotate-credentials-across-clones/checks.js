// Checks of rotate-credentials-across-clones (docs/exercises.md "The check API").
const CLUSTERS = ['us-east-1/primary', 'us-west-2/dr']

export default {
  'new-password-everywhere': async (lab) => {
    const reasons = []
    for (const ref of CLUSTERS) {
      const cluster = await lab.cluster(ref)
      for (const t of await cluster.tryLogin('CU', 'alice', lab.values.newPassword)) {
        if (!t.ok) reasons.push(`could not reach ${ref} ${t.label}: ${t.error}`)
        else if (!t.value.ok) reasons.push(`the new password does not work on ${ref} ${t.label} (${t.value.reason})`)
      }
    }
    return reasons
  },
  'old-password-nowhere': async (lab) => {
    const reasons = []
    for (const ref of CLUSTERS) {
      const cluster = await lab.cluster(ref)
      for (const t of await cluster.tryLogin('CU', 'alice', 'Alice1234')) {
        if (t.ok && t.value.ok) reasons.push(`the old password Alice1234 still works on ${ref} ${t.label}`)
      }
    }
    return reasons
  }
}
