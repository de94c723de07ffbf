// Checks of sync-key-to-clone (docs/exercises.md "The check API").
export default {
  'key-on-clone': async (lab) => {
    const key = lab.values.key[0]
    const primary = await lab.cluster('us-east-1/primary')
    const dr = await lab.cluster('us-west-2/dr')
    const [source] = await primary.keyInfo(key)
    const [sourceKeys] = await primary.keys('alice')
    if (!source?.ok || source.value === undefined || !sourceKeys?.ok) return [`cannot read key ${key} on us-east-1/primary: ${source?.ok === false ? source.error : 'it is not there'}`]
    const reasons = []
    const infos = await dr.keyInfo(key)
    const keys = await dr.keys('alice')
    for (const [i, info] of infos.entries()) {
      const listed = keys[i]
      if (!info.ok) reasons.push(`cannot read us-west-2/dr ${info.label}: ${info.error}`)
      else if (info.value === undefined) reasons.push(`key ${key} is not on us-west-2/dr ${info.label}`)
      else if (info.value.owner !== source.value.owner) reasons.push(`key ${key} on us-west-2/dr ${info.label} is owned by ${info.value.owner}, on the primary by ${source.value.owner}`)
      else if (listed?.ok && !listed.value.handles.includes(key)) reasons.push(`key ${key} is on us-west-2/dr ${info.label} but not listed as alice's`)
      else if (listed?.ok && listed.value.hash !== sourceKeys.value.hash) reasons.push(`the key hash of us-west-2/dr ${info.label} differs from the primary's: its keys are not the primary's`)
    }
    return reasons
  }
}
