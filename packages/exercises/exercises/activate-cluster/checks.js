// Checks of activate-cluster (docs/exercises.md "The check API").

/** A reason for every HSM where `name` is missing or not of `type`. */
async function expectUser (lab, name, type) {
  const cluster = await lab.cluster('us-east-1/training')
  const reasons = []
  for (const answer of await cluster.user(name)) {
    if (!answer.ok) reasons.push(`could not list the users of ${answer.label}: ${answer.error}`)
    else if (answer.value === undefined) reasons.push(`there is no user ${name} on ${answer.label}`)
    else if (answer.value.userType !== type) reasons.push(`${name} is still a ${answer.value.userType} on ${answer.label}, not a ${type}`)
  }
  return reasons
}

export default {
  'admin-is-co': async (lab) => await expectUser(lab, 'admin', 'CO'),
  'app-is-cu': async (lab) => await expectUser(lab, 'app', 'CU')
}
