#!/usr/bin/env node
// The Docker lab's health checks (docker-compose.yml `healthcheck`), a script in the image so that
// each check is a few words with no spaces inside one: Podman 4 splits a `node -e "<script>"`
// check's script at its spaces, and Docker and Podman run `["CMD", ...]` alike.
//
//   node docker/healthcheck.js URL [FIELD=ENV_VAR ...]
//
// Healthy (exit 0) when GET URL answers 2xx within 3 s and, for each FIELD=ENV_VAR, the JSON body's
// FIELD equals the container's $ENV_VAR (a control plane of the right region, the HSM of the
// right address). Otherwise exit 1, with one line on stderr saying why (`docker inspect` shows it).
const [url, ...fields] = process.argv.slice(2)
if (url === undefined) {
  process.stderr.write('usage: node docker/healthcheck.js URL [FIELD=ENV_VAR ...]\n')
  process.exit(2)
}
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) })
  if (!response.ok) throw new Error(`${url} answered ${response.status}`)
  if (fields.length > 0) {
    const body = await response.json()
    for (const pair of fields) {
      const [field = '', name = ''] = pair.split('=')
      const want = process.env[name]
      if (body?.[field] !== want) throw new Error(`${url}: ${field} is ${JSON.stringify(body?.[field])}, not $${name} (${JSON.stringify(want)})`)
    }
  }
  process.exit(0)
} catch (err) {
  process.stderr.write(`unhealthy: ${err.message}\n`)
  process.exit(1)
}
