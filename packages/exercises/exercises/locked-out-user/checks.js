// Checks of locked-out-user (docs/exercises.md "The check API").
export default {
  'carol-unlocked': async (lab) => {
    const cluster = await lab.cluster('us-east-1/training')
    const password = lab.values.newPassword
    const reasons = []
    for (const t of await cluster.tryLogin('CU', 'carol', password)) {
      if (!t.ok) reasons.push(`could not reach ${t.label}: ${t.error}`)
      else if (!t.value.ok && t.value.failures >= 4) reasons.push(`carol is still locked out on ${t.label} (${t.value.failures} failed logins): a crypto officer must reset her password there`)
      else if (!t.value.ok) reasons.push(`carol's new password does not work on ${t.label} (${t.value.reason})`)
    }
    if (reasons.length > 0) return reasons
    // A successful login clears the count; a count left means a login failed since.
    for (const u of await cluster.user('carol')) {
      if (u.ok && u.value !== undefined && u.value.loginFailureCount !== 0) reasons.push(`carol has LoginFailureCnt ${u.value.loginFailureCount} on ${u.label}, not 0`)
    }
    return reasons
  }
}
