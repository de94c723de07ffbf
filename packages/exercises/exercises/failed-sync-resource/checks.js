// Checks of failed-sync-resource (docs/exercises.md "The check API").
export default {
  'all-synchronized': async (lab) => {
    const records = await lab.syncResources('us-east-1/primary')
    const keys = lab.values.keys
    const reasons = []
    for (const handle of keys) {
      if (!records.some(r => r.resourceType === 'KEY' && r.resourceId === String(handle))) reasons.push(`key ${handle} has no record in the task yet`)
    }
    for (const r of records) {
      if (r.status === 'SYNCHRONIZED') continue
      const where = r.replica ?? r.replicaClusterId
      reasons.push(r.status === 'FAILED'
        ? `${r.resourceType.toLowerCase()} ${r.resourceId} on ${where} is FAILED: ${r.failureCause?.code ?? '?'}: ${r.failureCause?.message ?? 'no cause'} (${r.attempts} attempts)`
        : `${r.resourceType.toLowerCase()} ${r.resourceId} on ${where} is still ${r.status} (${r.attempts} attempts; the task retries with backoff)`)
    }
    return reasons
  }
}
