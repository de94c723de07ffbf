// The hsmlab console's page: Preact components written with htm (no build step), fed by the
// console's server-sent events (/api/events: one event per topic, on every change), so the page
// never polls. Pages are chosen by the URL's hash (#/topology, #/cluster/REGION/NAME, ...).
import { h, render } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import htm from 'htm'

const html = htm.bind(h)

// ---------------------------------------------------------------------------------------------
// Live data
// ---------------------------------------------------------------------------------------------

const TOPICS = ['status', 'faults', 'backups', 'sync', 'hsms', 'timeline', 'reports', 'exercise']

function useLive () {
  const [data, setData] = useState({ connected: false })
  useEffect(() => {
    const source = new EventSource('/api/events')
    source.onopen = () => { setData(d => ({ ...d, connected: true })) }
    source.onerror = () => { setData(d => ({ ...d, connected: false })) }
    for (const topic of TOPICS) {
      source.addEventListener(topic, event => {
        const value = JSON.parse(event.data)
        setData(d => ({ ...d, [topic]: value, connected: true }))
      })
    }
    return () => { source.close() }
  }, [])
  return data
}

function useRoute () {
  const [hash, setHash] = useState(location.hash || '#/topology')
  useEffect(() => {
    const on = () => { setHash(location.hash || '#/topology') }
    addEventListener('hashchange', on)
    return () => { removeEventListener('hashchange', on) }
  }, [])
  return hash.slice(2).split('/').map(decodeURIComponent)
}

async function post (path, body) {
  const res = await fetch(`/api/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const answer = await res.json().catch(() => ({ message: `HTTP ${res.status}` }))
  if (!res.ok) throw new Error(answer.message ?? `HTTP ${res.status}`)
  return answer.result
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const lab = live => live.status?.lab
const clustersOf = live => (lab(live)?.regions ?? []).flatMap(r => r.clusters)
const clusterById = (live, id) => clustersOf(live).find(c => c.id === id)
const clusterName = (live, id) => { const c = clusterById(live, id); return c === undefined ? id : `${c.region}/${c.name}` }
const time = seconds => seconds === undefined || seconds === null ? '' : new Date(seconds * 1000).toLocaleTimeString()
const timeMs = ms => new Date(ms).toLocaleTimeString()

function stateClass (state) {
  if (['ACTIVE', 'READY', 'RUNNING', 'SYNCHRONIZED', 'ASSOCIATED', 'INITIALIZED'].includes(state)) return 'ok'
  if (['DEGRADED', 'FAILED', 'DELETED', 'DOWN', 'UNKNOWN', 'DISASSOCIATED'].includes(state)) return 'bad'
  return 'busy'
}

const Badge = ({ state, title }) => html`<span class="badge ${stateClass(state)}" title=${title ?? ''} data-state=${state}>${state}</span>`

/** What is set on one link: cut (partition or blackhole), slow (latency ms), reset, or nothing. */
function linkState (link) {
  if (link === undefined) return { state: 'unknown', label: '' }
  if (link.partitioned || link.blackholed || !link.enabled) return { state: 'cut', label: link.blackholed ? 'blackholed' : 'cut' }
  const latency = link.toxics.find(t => t.type === 'latency')
  if (latency !== undefined) return { state: 'slow', label: `${latency.attributes.latency} ms${latency.attributes.jitter ? ` ± ${latency.attributes.jitter}` : ''}` }
  if (link.toxics.some(t => t.type === 'reset_peer')) return { state: 'reset', label: 'resets' }
  return { state: 'ok', label: '' }
}

/** Two directions of a link as one: the worse state wins. */
function worse (a, b) {
  const rank = { cut: 3, slow: 2, reset: 1, ok: 0, unknown: -1 }
  return (rank[a.state] ?? 0) >= (rank[b.state] ?? 0) ? a : b
}

function describeFault (fault) {
  if (fault === undefined) return ''
  const where = fault.group ?? (fault.between ?? []).join(' ↔ ')
  const extra = fault.type === 'latency' ? ` ${fault.ms} ms${fault.jitter ? ` ± ${fault.jitter}` : ''}` : fault.type === 'reset_peer' && fault.timeoutMs ? ` after ${fault.timeoutMs} ms` : ''
  return `${fault.type} ${where}${extra}`
}

function useAction () {
  const [message, setMessage] = useState(undefined)
  const [busy, setBusy] = useState(false)
  const run = async (what, path, body, onDone) => {
    setBusy(true)
    setMessage(undefined)
    try {
      const result = await post(path, body)
      setMessage({ ok: true, text: `${what}: done` })
      onDone?.(result)
      return result
    } catch (err) {
      setMessage({ ok: false, text: `${what}: ${err.message}` })
      return undefined
    } finally {
      setBusy(false)
    }
  }
  const view = message === undefined ? null : html`<p class="message ${message.ok ? 'ok' : 'bad'}" role="status" data-testid="action-message">${message.text}</p>`
  return { run, busy, view, setMessage }
}

// ---------------------------------------------------------------------------------------------
// Layout: top bar (region selector), navigation, page
// ---------------------------------------------------------------------------------------------

const NAV = [
  ['topology', 'Topology'],
  ['clusters', 'Clusters'],
  ['backups', 'Backups and copies'],
  ['faults', 'Faults'],
  ['sync', 'Cross-region Synchronization', 'Security Operations › Disaster Recovery'],
  ['reports', 'Scenario reports'],
  ['exercises', 'Exercises']
]

function App () {
  const live = useLive()
  const route = useRoute()
  const regions = (lab(live)?.regions ?? []).map(r => r.name)
  const [region, setRegion] = useState(() => sessionStorage.getItem('hsmlab-region') ?? '')
  const current = regions.includes(region) ? region : regions[0] ?? ''
  const page = route[0] || 'topology'
  const choose = value => {
    setRegion(value)
    sessionStorage.setItem('hsmlab-region', value)
    // A primary's details belong to its region: another region shows that region's list.
    if (page === 'sync' && route[1] !== undefined && route[1] !== value) location.hash = '#/sync'
  }
  return html`
    <header class="topbar">
      <a class="brand" href="#/topology">hsmlab <span>console</span></a>
      <label class="region">Region
        <select id="region-select" aria-label="Region" value=${current} onChange=${e => { choose(e.currentTarget.value) }}>
          ${regions.map(r => html`<option value=${r}>${r}</option>`)}
        </select>
      </label>
      <span class="lab-state">${lab(live) === undefined ? (live.status?.error ?? 'reading the lab…') : html`lab ${lab(live).dir} <${Badge} state=${lab(live).state} />`}</span>
      <span class="live ${live.connected ? 'on' : 'off'}" data-testid="live">${live.connected ? 'live' : 'reconnecting…'}</span>
    </header>
    <div class="body">
      <nav class="side">
        ${NAV.map(([id, label, group]) => html`
          ${group === undefined ? null : html`<div class="nav-group">${group}</div>`}
          <a href="#/${id}" class=${page === id || (id === 'clusters' && page === 'cluster') ? 'active' : ''} data-nav=${id}>${label}</a>`)}
      </nav>
      <main>
        ${page === 'topology' ? html`<${Topology} live=${live} />`
          : page === 'clusters' ? html`<${Clusters} live=${live} />`
          : page === 'cluster' ? html`<${ClusterPage} live=${live} region=${route[1]} name=${route[2]} />`
          : page === 'backups' ? html`<${Backups} live=${live} />`
          : page === 'faults' ? html`<${Faults} live=${live} />`
          : page === 'sync' ? (route[1] === undefined ? html`<${SyncList} live=${live} region=${current} />` : html`<${SyncDetails} live=${live} region=${route[1]} clusterId=${route[2]} tab=${route[3]} replica=${route[4]} />`)
          : page === 'reports' ? html`<${Reports} live=${live} run=${route[1]} />`
          : page === 'exercises' ? html`<${Exercises} live=${live} />`
          : html`<p>No page ${page}.</p>`}
      </main>
    </div>`
}

// ---------------------------------------------------------------------------------------------
// 1. Topology
// ---------------------------------------------------------------------------------------------

const REGION_W = 440
const REGION_GAP = 150
const HSM_H = 40
const CLUSTER_HEAD = 52

function Topology ({ live }) {
  const status = lab(live)
  if (status === undefined) return html`<h1>Topology</h1><p class="muted">${live.status?.error ?? 'Reading the lab…'}</p>`
  const links = new Map((live.faults?.listing?.links ?? []).map(l => [l.name, l]))
  const tasks = Object.values(live.sync?.regions ?? {}).flatMap(r => r.tasks ?? [])
  // Boxes: a column per region, its clusters one under the other.
  // A link or arrow between two regions that are not side by side runs in a lane of its own:
  // WAN links above the region boxes, clone and sync arrows below them, never across a box.
  const far = []
  for (let i = 0; i < status.regions.length; i++) for (let j = i + 2; j < status.regions.length; j++) far.push(`${i}-${j}`)
  const top = 10 + far.length * 20
  const boxes = new Map()
  let height = 0
  status.regions.forEach((region, i) => {
    let y = top + 80
    const x = 20 + i * (REGION_W + REGION_GAP)
    for (const cluster of region.clusters) {
      const h = CLUSTER_HEAD + Math.max(1, cluster.hsms.length) * HSM_H + 12
      boxes.set(`${region.name}/${cluster.name}`, { x: x + 16, y, w: REGION_W - 32, h, cluster, ri: i })
      y += h + 44
    }
    height = Math.max(height, y)
  })
  const regionBottom = height
  const width = 40 + status.regions.length * REGION_W + (status.regions.length - 1) * REGION_GAP
  const wans = []
  for (let i = 0; i < status.regions.length; i++) {
    for (let j = i + 1; j < status.regions.length; j++) {
      const a = status.regions[i].name
      const b = status.regions[j].name
      const state = worse(linkState(links.get(`wan/${a}->${b}`)), linkState(links.get(`wan/${b}->${a}`)))
      if (!links.has(`wan/${a}->${b}`) && !links.has(`wan/${b}->${a}`)) state.state = 'direct'
      wans.push({ a, b, i, j, lane: far.indexOf(`${i}-${j}`), ...state })
    }
  }
  let below = 0
  const route = (from, to, at) => from.ri !== undefined && Math.abs(from.ri - to.ri) > 1 ? { d: under(from, to, regionBottom + 18 + (below++) * 16), labelY: regionBottom + 14 + below * 16 } : { d: curve(from, to, at) }
  const clones = clustersOf(live).filter(c => c.cloneOf !== null).map(c => ({ from: boxes.get(c.cloneOf), to: boxes.get(`${c.region}/${c.name}`), cluster: c }))
    .filter(c => c.from !== undefined && c.to !== undefined).map(c => ({ ...c, path: route(c.from, c.to, 0.35) }))
  const syncs = tasks.flatMap(t => t.Replicas.filter(r => r.State === 'ASSOCIATED').map(r => {
    const from = clusterById(live, t.PrimaryClusterId)
    const to = clusterById(live, r.ClusterId)
    return { task: t, replica: r, from: from && boxes.get(`${from.region}/${from.name}`), to: to && boxes.get(`${to.region}/${to.name}`) }
  })).filter(s => s.from !== undefined && s.to !== undefined).map(s => ({ ...s, path: route(s.from, s.to, 0.65) }))
  height += below * 16 + (below > 0 ? 24 : 0)
  const go = hash => () => { location.hash = hash }
  return html`
    <h1>Topology</h1>
    <p class="muted">Regions, their control planes, clusters and HSMs; the links between regions with their fault state; clones and synchronisation tasks as arrows. Click anything to open its page.</p>
    <div class="legend">
      <span><i class="l ok"></i> link up</span><span><i class="l cut"></i> link cut</span><span><i class="l slow"></i> link slowed</span>
      <span><i class="l clone"></i> clone of</span><span><i class="l sync"></i> synchronisation task</span>
    </div>
    <svg class="topology" viewBox="0 0 ${width} ${height + 20}" width=${width} height=${height + 20} role="img" aria-label="topology">
      <defs>
        <marker id="arrow-clone" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7fd7" /></marker>
        <marker id="arrow-sync" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f9d6b" /></marker>
      </defs>
      ${status.regions.map((region, i) => {
        const x = 20 + i * (REGION_W + REGION_GAP)
        const cp = region.controlPlane
        return html`
          <g class="region" data-region=${region.name}>
            <rect x=${x} y=${top} width=${REGION_W} height=${regionBottom - top} rx="10" class="region-box" />
            <text x=${x + 16} y=${top + 28} class="region-name">${region.name}</text>
            <text x=${x + 16} y=${top + 50} class="small" onClick=${go('#/backups')}>control plane ${cp === null ? 'not started' : `${cp.endpoint} · pid ${cp.pid ?? '—'}`}</text>
            <circle cx=${x + REGION_W - 24} cy=${top + 23} r="7" class="dot ${stateClass(cp?.state ?? 'DOWN')}"><title>control plane ${cp?.state ?? 'DOWN'}</title></circle>
          </g>`
      })}
      ${wans.map(w => {
        const x1 = 20 + w.i * (REGION_W + REGION_GAP) + REGION_W
        const x2 = 20 + w.j * (REGION_W + REGION_GAP)
        const y = w.lane < 0 ? top + 24 : 18 + w.lane * 20
        const c1 = 20 + w.i * (REGION_W + REGION_GAP) + REGION_W / 2
        const c2 = 20 + w.j * (REGION_W + REGION_GAP) + REGION_W / 2
        const mid = w.lane < 0 ? (x1 + x2) / 2 : (c1 + c2) / 2
        const label = w.state === 'cut' || w.state === 'slow' ? w.label : w.state === 'direct' ? 'direct (no fault proxy)' : w.state === 'reset' ? 'resets' : 'WAN'
        return html`
          <g class="wan ${w.state}" data-link=${`wan/${w.a}<->${w.b}`} data-state=${w.state} onClick=${go('#/faults')}>
            ${w.lane < 0 ? html`<line x1=${x1} y1=${y} x2=${x2} y2=${y} />` : html`<polyline points="${c1},${top} ${c1},${y} ${c2},${y} ${c2},${top}" fill="none" />`}
            ${w.state === 'cut' ? html`<g class="cut-mark"><line x1=${mid - 8} y1=${y - 10} x2=${mid + 8} y2=${y + 10} /><line x1=${mid + 8} y1=${y - 10} x2=${mid - 8} y2=${y + 10} /></g>` : null}
            <text x=${mid} y=${y - (w.state === 'cut' ? 14 : 7)} text-anchor="middle" class="small wan-label">${label}</text>
            <title>WAN ${w.a} ↔ ${w.b}: ${w.state}${w.label ? ` (${w.label})` : ''}</title>
          </g>`
      })}
      ${[...boxes.values()].map(({ x, y, w, h, cluster }) => html`
        <g class="cluster" data-cluster=${`${cluster.region}/${cluster.name}`} onClick=${go(`#/cluster/${cluster.region}/${cluster.name}`)}>
          <rect x=${x} y=${y} width=${w} height=${h} rx="8" class="cluster-box" />
          <text x=${x + 12} y=${y + 22} class="cluster-name">${cluster.name}</text>
          <text x=${x + 12} y=${y + 40} class="small">${cluster.id ?? 'not created'}${cluster.cloneOf ? ` · clone of ${cluster.cloneOf}` : ''}</text>
          <g transform="translate(${x + w - 100}, ${y + 10})"><rect width="88" height="20" rx="10" class="pill ${stateClass(cluster.state)}" /><text x="44" y="14" text-anchor="middle" class="pill-text">${cluster.state}</text></g>
          ${cluster.hsms.map((hsm, k) => {
            const link = worse(linkState(links.get(`${cluster.region}/${cluster.name}/hsm-${k}`)), { state: 'unknown' })
            const hy = y + CLUSTER_HEAD + k * HSM_H
            return html`
              <g class="hsm" data-hsm=${hsm.id} data-state=${hsm.state}>
                <rect x=${x + 10} y=${hy} width=${w - 20} height=${HSM_H - 6} rx="5" class="hsm-box ${stateClass(hsm.state)}" />
                <circle cx=${x + 24} cy=${hy + 17} r="6" class="dot ${stateClass(hsm.state)}" />
                <text x=${x + 38} y=${hy + 14} class="hsm-id">server ${hsm.server} · ${hsm.id}</text>
                <text x=${x + 38} y=${hy + 28} class="small">${hsm.state} · ${hsm.availabilityZone ?? '—'} · ${hsm.endpoint.replace('ws://', '')}</text>
                ${link.state === 'cut' || link.state === 'slow' ? html`<text x=${x + w - 20} y=${hy + 21} text-anchor="end" class="link-flag ${link.state}">client link ${link.label}</text>` : null}
              </g>`
          })}
        </g>`)}
      ${clones.map(({ path, cluster }) => html`
        <g class="clone-arrow" data-clone=${`${cluster.cloneOf}->${cluster.region}/${cluster.name}`}>
          <path d=${path.d} marker-end="url(#arrow-clone)" />
          <title>${cluster.region}/${cluster.name} is a clone of ${cluster.cloneOf} (backup ${cluster.sourceBackupId ?? '?'})</title>
        </g>`)}
      ${syncs.map(({ task, replica, from, to, path }) => html`
        <g class="sync-arrow" data-sync=${`${task.PrimaryClusterId}->${replica.ClusterId}`} onClick=${go(`#/sync/${task.PrimaryRegion}/${task.PrimaryClusterId}`)}>
          <path d=${path.d} marker-end="url(#arrow-sync)" />
          <text x=${path.labelY === undefined ? (from.x + from.w + to.x) / 2 : (from.x + from.w / 2 + to.x + to.w / 2) / 2} y=${path.labelY ?? (from.y + to.y) / 2 + from.h * 0.65 + 16} text-anchor="middle" class="small sync-label">sync ${replica.SyncType}</text>
          <title>synchronisation ${task.SyncTaskId}: ${clusterName(live, task.PrimaryClusterId)} → ${clusterName(live, replica.ClusterId)} (${replica.SyncType})</title>
        </g>`)}
    </svg>`
}

/** A path from the bottom of one box down to a lane at `y` under the regions, along it, and up into another box. */
function under (from, to, y) {
  const x1 = from.x + from.w / 2
  const x2 = to.x + to.w / 2
  return `M${x1},${from.y + from.h} L${x1},${y} L${x2},${y} L${x2},${to.y + to.h}`
}

/** A curve from the right edge of one box to the left edge of another, at `at` of their heights. */
function curve (from, to, at) {
  const x1 = from.x + from.w
  const y1 = from.y + from.h * at
  const x2 = to.x
  const y2 = to.y + to.h * at
  if (x2 <= x1) return `M${from.x + from.w / 2},${from.y + from.h} C${from.x + from.w / 2},${from.y + from.h + 40} ${to.x + to.w / 2},${to.y - 40} ${to.x + to.w / 2},${to.y}`
  const dx = (x2 - x1) / 2
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`
}

// ---------------------------------------------------------------------------------------------
// 2. Clusters
// ---------------------------------------------------------------------------------------------

function Clusters ({ live }) {
  return html`
    <h1>Clusters</h1>
    <table class="grid">
      <thead><tr><th>Cluster</th><th>Cluster ID</th><th>State</th><th>HSMs</th><th>Clone of</th><th>Lineage</th></tr></thead>
      <tbody>${clustersOf(live).map(c => html`
        <tr><td><a href="#/cluster/${c.region}/${c.name}">${c.region}/${c.name}</a></td><td class="mono">${c.id ?? '—'}</td><td><${Badge} state=${c.state} /></td>
          <td>${c.hsms.length}</td><td>${c.cloneOf ?? '—'}</td><td class="mono">${c.lineage ?? '—'}</td></tr>`)}</tbody>
    </table>`
}

function ClusterPage ({ live, region, name }) {
  const cluster = clustersOf(live).find(c => c.region === region && c.name === name)
  if (cluster === undefined) return html`<h1>${region}/${name}</h1><p class="muted">No such cluster in the lab (yet).</p>`
  const contents = live.hsms?.clusters?.[`${region}/${name}`]?.hsms ?? []
  const byId = new Map(contents.map(c => [c.id, c]))
  const hsms = cluster.hsms.map(h => ({ ...h, contents: byId.get(h.id) }))
  const read = hsms.filter(h => h.contents !== undefined && h.contents.error === undefined)
  const keyDigest = c => c.keys.map(k => `${k.handle}:${k.hash}`).join(',')
  const userDigest = c => c.users.map(u => `${u.name}:${u.type}`).sort().join(',')
  const agree = read.length === hsms.length && read.length > 0 &&
    read.every(h => keyDigest(h.contents) === keyDigest(read[0].contents) && userDigest(h.contents) === userDigest(read[0].contents))
  const userNames = [...new Set(read.flatMap(h => h.contents.users.map(u => u.name)))].sort()
  const handles = [...new Set(read.flatMap(h => h.contents.keys.map(k => k.handle)))].sort((a, b) => a - b)
  const backups = (live.backups?.regions?.[region]?.backups ?? []).filter(b => b.ClusterId === cluster.id)
  return html`
    <h1>${region}/${name} <${Badge} state=${cluster.state} /></h1>
    <p class="muted mono">${cluster.id ?? ''} · lineage ${cluster.lineage ?? '—'}${cluster.cloneOf ? ` · clone of ${cluster.cloneOf} (from ${cluster.sourceBackupId})` : ''}</p>
    <p class="agreement ${agree ? 'ok' : 'bad'}" data-testid="agreement">${read.length === 0 ? 'Reading the HSMs…' : agree ? `The ${hsms.length} HSMs agree: same users, same keys (hashes equal).` : 'The HSMs do not agree: the differences are highlighted below.'}</p>
    <h2>HSMs</h2>
    <table class="grid">
      <thead><tr><th>Server</th><th>HSM ID</th><th>State</th><th>Availability zone</th><th>Address</th><th>Users</th><th>Keys</th><th>pid</th></tr></thead>
      <tbody>${hsms.map(h => html`
        <tr><td>${h.server}</td><td class="mono">${h.id}</td><td><${Badge} state=${h.state} title=${h.stateMessage} /></td><td>${h.availabilityZone ?? '—'}</td>
          <td class="mono">${h.endpoint}</td><td>${h.contents?.error ? html`<span class="bad-text" title=${h.contents.error}>unreadable</span>` : h.contents?.users.length ?? '…'}</td>
          <td>${h.contents?.error ? '—' : h.contents?.keysTotal ?? h.contents?.keys.length ?? '…'}</td><td>${h.pid ?? '—'}</td></tr>`)}</tbody>
    </table>
    <h2>Users per HSM</h2>
    <table class="grid matrix" data-testid="users">
      <thead><tr><th>User</th>${read.map(h => html`<th>server ${h.server}</th>`)}</tr></thead>
      <tbody>${userNames.map(n => {
        const cells = read.map(h => h.contents.users.find(u => u.name === n))
        const same = cells.every(c => c !== undefined && c.type === cells[0]?.type)
        return html`<tr class=${same ? '' : 'differs'} data-user=${n}><td>${n}</td>${cells.map(c => html`<td>${c === undefined ? html`<span class="missing">missing</span>` : html`${c.type}${c.loginFailureCount > 0 ? html` <span class="muted">(${c.loginFailureCount} failed logins)</span>` : ''}${c.twoFactor ? ' · 2FA' : ''}${c.quorum ? ' · quorum' : ''}`}</td>`)}</tr>`
      })}</tbody>
    </table>
    <h2>Keys per HSM</h2>
    ${read.some(h => (h.contents.keysTotal ?? 0) > h.contents.keys.length) ? html`<p class="muted">The first ${read[0].contents.keys.length} keys of each HSM (by handle) are shown.</p>` : null}
    ${handles.length === 0 ? html`<p class="muted">No token keys.</p>` : html`
    <table class="grid matrix" data-testid="keys">
      <thead><tr><th>Handle</th><th>Label</th><th>Owner</th><th>Shared with</th>${read.map(h => html`<th>hash on server ${h.server}</th>`)}</tr></thead>
      <tbody>${handles.map(handle => {
        const cells = read.map(h => h.contents.keys.find(k => k.handle === handle))
        const first = cells.find(c => c !== undefined)
        const same = cells.every(c => c !== undefined && c.hash === first.hash)
        return html`<tr class=${same ? '' : 'differs'}><td>${handle}</td><td>${first.label}</td><td>${first.owner}</td><td>${first.sharedWith.join(', ') || '—'}</td>
          ${cells.map(c => html`<td class="mono">${c === undefined ? html`<span class="missing">missing</span>` : c.hash}</td>`)}</tr>`
      })}</tbody>
    </table>`}
    <h2>Backups</h2>
    <${BackupTable} live=${live} region=${region} backups=${backups} />`
}

// ---------------------------------------------------------------------------------------------
// 3. Backups and copies
// ---------------------------------------------------------------------------------------------

function Backups ({ live }) {
  const status = lab(live)
  const action = useAction()
  return html`
    <h1>Backups and copies</h1>
    <p class="muted">Each region's backups as its control plane tells them, live: a copy goes CREATE_IN_PROGRESS → READY, or DELETED with its cause.</p>
    ${action.view}
    ${(status?.regions ?? []).map(region => {
      const entry = live.backups?.regions?.[region.name]
      return html`
        <section class="panel" data-region=${region.name}>
          <h2>${region.name}</h2>
          <div class="actions-row">
            ${region.clusters.filter(c => c.id !== null).map(c => html`
              <button disabled=${action.busy} onClick=${() => action.run(`backup of ${c.region}/${c.name}`, 'backups/create', { region: region.name, clusterId: c.id })}>Back up ${c.name} now</button>`)}
          </div>
          ${entry?.error ? html`<p class="bad-text">${entry.error}</p>` : html`<${BackupTable} live=${live} region=${region.name} backups=${entry?.backups ?? []} />`}
          <h3>Clusters in ${region.name}</h3>
          <table class="grid compact" data-testid="clusters-${region.name}">
            <thead><tr><th>Cluster ID</th><th>Lab name</th><th>State</th><th>HSMs</th><th>Source backup</th></tr></thead>
            <tbody>${(entry?.clusters ?? []).map(c => html`
              <tr data-cluster-id=${c.ClusterId}><td class="mono">${c.ClusterId}</td><td>${clusterById(live, c.ClusterId)?.name ?? html`<span class="muted">not in the topology</span>`}</td>
                <td><${Badge} state=${c.State} /></td><td>${c.Hsms}</td><td class="mono">${c.SourceBackupId ?? '—'}</td></tr>`)}</tbody>
          </table>
        </section>`
    })}`
}

function BackupTable ({ live, region, backups }) {
  const regions = (lab(live)?.regions ?? []).map(r => r.name).filter(r => r !== region)
  const action = useAction()
  const [targets, setTargets] = useState({})
  if (backups.length === 0) return html`<p class="muted">No backups.</p>`
  const sorted = [...backups].sort((a, b) => (b.CreateTimestamp ?? 0) - (a.CreateTimestamp ?? 0))
  return html`
    ${action.view}
    <table class="grid" data-testid="backups-${region}">
      <thead><tr><th>Backup ID</th><th>Cluster</th><th>State</th><th>Created</th><th>Source</th><th>Actions</th></tr></thead>
      <tbody>${sorted.map(b => html`
        <tr data-backup=${b.BackupId}>
          <td class="mono">${b.BackupId}</td><td>${clusterName(live, b.ClusterId) ?? '—'}</td>
          <td><${Badge} state=${b.BackupState} />${b.StateMessage && b.BackupState !== 'READY' ? html`<div class="cause">${b.StateMessage}</div>` : null}</td>
          <td>${time(b.CreateTimestamp)}</td>
          <td>${b.SourceRegion ? html`${b.SourceRegion} <span class="mono">${b.SourceBackup}</span>` : '—'}</td>
          <td class="actions">${b.BackupState === 'READY' ? html`
            <select aria-label="Destination region" value=${targets[b.BackupId] ?? regions[0]} onChange=${e => { setTargets({ ...targets, [b.BackupId]: e.currentTarget.value }) }}>${regions.map(r => html`<option value=${r}>${r}</option>`)}</select>
            <button disabled=${action.busy || regions.length === 0} onClick=${() => action.run(`copy of ${b.BackupId}`, 'backups/copy', { region, backupId: b.BackupId, destinationRegion: targets[b.BackupId] ?? regions[0] })}>Copy to region</button>
            <button disabled=${action.busy} onClick=${() => action.run(`cluster from ${b.BackupId}`, 'backups/restore-cluster', { region, backupId: b.BackupId })}>Create cluster</button>` : null}</td>
        </tr>`)}</tbody>
    </table>`
}

// ---------------------------------------------------------------------------------------------
// 5. Faults
// ---------------------------------------------------------------------------------------------

function Faults ({ live }) {
  const listing = live.faults?.listing
  // Regions first, then clusters, then HSMs and the kinds of links (wan, peer/..., control/...).
  const groups = useMemo(() => {
    const all = [...new Set((listing?.links ?? []).flatMap(l => l.groups))].filter(g => !/^hsm-/.test(g))
    const rank = g => /^(wan|peer|control)(\/|$)/.test(g) ? 3 : g.split('/').length - 1
    return all.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  }, [listing])
  const [type, setType] = useState('partition')
  const [group, setGroup] = useState('')
  const [other, setOther] = useState('')
  const [ms, setMs] = useState('150')
  const action = useAction()
  const g = group || groups[0] || ''
  const regions = (lab(live)?.regions ?? []).map(r => r.name)
  const o = other || regions.find(r => r !== g) || ''
  const apply = () => {
    const fault = type === 'latency' ? { type, between: [g, o], ms: Number(ms) } : { type, group: g }
    void action.run(describeFault(fault), 'faults/apply', { fault })
  }
  if (live.faults?.error) return html`<h1>Faults</h1><p class="bad-text">${live.faults.error}</p>`
  const entries = [...(live.timeline?.entries ?? [])].reverse()
  return html`
    <h1>Faults</h1>
    <section class="panel">
      <h2>Set a fault</h2>
      <div class="form-row">
        <label>Fault <select id="fault-type" value=${type} onChange=${e => { setType(e.currentTarget.value) }}>
          <option value="partition">cut (partition)</option><option value="blackhole">blackhole</option><option value="latency">slow (latency)</option><option value="reset_peer">reset</option>
        </select></label>
        <label>${type === 'latency' ? 'Between' : 'Group'} <select id="fault-group" value=${g} onChange=${e => { setGroup(e.currentTarget.value) }}>${groups.map(x => html`<option value=${x}>${x}</option>`)}</select></label>
        ${type === 'latency' ? html`
          <label>and <select id="fault-other" value=${o} onChange=${e => { setOther(e.currentTarget.value) }}>${groups.map(x => html`<option value=${x}>${x}</option>`)}</select></label>
          <label>ms <input id="fault-ms" type="number" min="0" value=${ms} onInput=${e => { setMs(e.currentTarget.value) }} /></label>` : null}
        <button id="fault-apply" class="primary" disabled=${action.busy || g === ''} onClick=${apply}>Apply</button>
        <button id="fault-heal-group" disabled=${action.busy || g === ''} onClick=${() => action.run(`heal ${g}`, 'faults/heal', { group: g })}>Heal ${g}</button>
        <button id="fault-heal-all" disabled=${action.busy} onClick=${() => action.run('heal everything', 'faults/heal', {})}>Heal everything</button>
      </div>
      ${action.view}
    </section>
    <div class="two-columns">
      <section class="panel">
        <h2>Links</h2>
        <table class="grid compact" data-testid="links">
          <thead><tr><th>Link</th><th>State</th><th>Listens</th></tr></thead>
          <tbody>${(listing?.links ?? []).map(l => { const s = linkState(l); return html`
            <tr data-link=${l.name} data-state=${s.state}><td class="mono">${l.name}</td><td><span class="link-state ${s.state}">${s.state === 'ok' ? 'up' : s.label}</span></td><td class="mono">${l.listen}</td></tr>` })}</tbody>
        </table>
      </section>
      <section class="panel">
        <h2>Timeline</h2>
        <p class="muted">Every fault set or lifted on this lab, from any source (also in ${lab(live)?.dir ?? 'DIR'}/faults.jsonl).</p>
        <ol class="timeline" data-testid="fault-timeline">${entries.map(e => html`
          <li class=${e.action}><span class="when">${timeMs(e.atMs)}</span><span class="source">${e.source}</span>
            <span class="what">${e.action === 'heal' ? (e.toxic ? `${e.toxic} lifted` : `heal ${e.group ?? 'everything'}`) : describeFault(e.fault)}</span><span class="muted">${e.links.length} links</span></li>`)}</ol>
      </section>
    </div>`
}

// ---------------------------------------------------------------------------------------------
// 4. Cross-region Synchronization (seed 003's procedures)
// ---------------------------------------------------------------------------------------------

const REMOVE_TEXT = html`
  <p><strong>Disassociating a replica instance is irreversible.</strong> After disassociation:</p>
  <ul>
    <li>The association between the primary instance and the replica instance cannot be re-established.</li>
    <li>You cannot create keys and secrets in the replica instance.</li>
    <li>The replica instance is removed from the synchronization task but is not released.</li>
    <li>Synchronized resources in the replica instance are retained but cannot be modified.</li>
  </ul>
  <p>Proceed with caution.</p>`

function Dialog ({ title, children, onClose }) {
  return html`
    <div class="overlay" onClick=${e => { if (e.target === e.currentTarget) onClose() }}>
      <div class="dialog" role="dialog" aria-modal="true" aria-label=${title}>
        <h2>${title}</h2>
        ${children}
      </div>
    </div>`
}

function SyncList ({ live, region }) {
  const entry = live.sync?.regions?.[region]
  const tasks = entry?.tasks ?? []
  const [creating, setCreating] = useState(false)
  return html`
    <div class="crumbs">Security Operations › Disaster Recovery › Cross-region Synchronization</div>
    <h1>Cross-region Synchronization <span class="muted small-title">${region}</span></h1>
    <p class="muted">Primary instances in ${region} (choose the region of the primary instance in the top navigation bar).</p>
    <div class="actions-row"><button onClick=${() => { setCreating(true) }}>Create synchronization task</button></div>
    ${entry?.error ? html`<p class="bad-text">${entry.error}</p>` : null}
    <table class="grid" data-testid="primaries">
      <thead><tr><th>Primary Instance ID</th><th>Cluster</th><th>Replica Instances</th><th>Created</th><th>Actions</th></tr></thead>
      <tbody>${tasks.length === 0 ? html`<tr><td colspan="5" class="muted">No primary instance with cross-region synchronization in ${region}.</td></tr>` : tasks.map(t => html`
        <tr data-primary=${t.PrimaryClusterId}><td class="mono">${t.PrimaryClusterId}</td><td>${clusterName(live, t.PrimaryClusterId)}</td>
          <td>${t.Replicas.filter(r => r.State === 'ASSOCIATED').length} associated${t.Replicas.some(r => r.State === 'DISASSOCIATED') ? `, ${t.Replicas.filter(r => r.State === 'DISASSOCIATED').length} removed` : ''}</td>
          <td>${time(t.CreatedAt)}</td>
          <td class="actions"><a class="button-link" href="#/sync/${region}/${t.PrimaryClusterId}">Manage</a></td></tr>`)}</tbody>
    </table>
    ${creating ? html`<${CreateTask} live=${live} region=${region} onClose=${() => { setCreating(false) }} />` : null}`
}

function CreateTask ({ live, region, onClose }) {
  const primaries = clustersOf(live).filter(c => c.region === region && c.id !== null)
  const [primary, setPrimary] = useState(primaries[0]?.id ?? '')
  const replicas = clustersOf(live).filter(c => c.region !== region && c.id !== null)
  const [replica, setReplica] = useState(replicas[0]?.id ?? '')
  const [type, setType] = useState('KEYS_AND_USERS')
  const action = useAction()
  const r = clusterById(live, replica)
  return html`<${Dialog} title="Create synchronization task" onClose=${onClose}>
    <label class="field">Primary instance <select value=${primary} onChange=${e => { setPrimary(e.currentTarget.value) }}>${primaries.map(c => html`<option value=${c.id}>${c.name} (${c.id})</option>`)}</select></label>
    <label class="field">Replica instance <select value=${replica} onChange=${e => { setReplica(e.currentTarget.value) }}>${replicas.map(c => html`<option value=${c.id}>${c.region}/${c.name} (${c.id})</option>`)}</select></label>
    <label class="field">Synchronization type <select value=${type} onChange=${e => { setType(e.currentTarget.value) }}><option value="KEYS_AND_USERS">Keys and users</option><option value="KEYS">Keys</option></select></label>
    ${action.view}
    <div class="dialog-buttons">
      <button class="primary" disabled=${action.busy || primary === '' || r === undefined} onClick=${() => action.run('create', 'sync/create', { region, ClusterId: primary, ReplicaClusterId: replica, ReplicaRegion: r.region, SyncType: type, Scope: { Keys: { All: true } } }, onClose)}>OK</button>
      <button onClick=${onClose}>Cancel</button>
    </div>
  <//>`
}

function SyncDetails ({ live, region, clusterId, tab, replica }) {
  const task = (live.sync?.regions?.[region]?.tasks ?? []).find(t => t.PrimaryClusterId === clusterId)
  const [dialog, setDialog] = useState(undefined)
  const current = tab === 'resources' ? 'resources' : 'replicas'
  if (task === undefined) return html`<div class="crumbs"><a href="#/sync">Cross-region Synchronization</a></div><h1>${clusterId}</h1><p class="muted">${live.sync === undefined ? 'Reading…' : 'No synchronization task for this primary instance.'}</p>`
  const base = `#/sync/${region}/${clusterId}`
  return html`
    <div class="crumbs"><a href="#/sync">Cross-region Synchronization</a> › ${clusterName(live, clusterId)}</div>
    <h1>Primary instance ${clusterName(live, clusterId)}</h1>
    <dl class="facts"><dt>Primary Instance ID</dt><dd class="mono">${clusterId}</dd><dt>Region</dt><dd>${region}</dd><dt>Task</dt><dd class="mono">${task.SyncTaskId}</dd><dt>Scope</dt><dd>${describeScope(task.Scope)}</dd></dl>
    <div class="tabs" role="tablist">
      <a role="tab" aria-selected=${current === 'replicas'} class=${current === 'replicas' ? 'active' : ''} href="${base}/replicas">Replica Instance</a>
      <a role="tab" aria-selected=${current === 'resources'} class=${current === 'resources' ? 'active' : ''} href="${base}/resources">Synchronized Resources</a>
    </div>
    ${current === 'replicas' ? html`
      <div class="actions-row">
        <button onClick=${() => { setDialog({ kind: 'add' }) }}>Add Replica Instance</button>
        <button onClick=${() => { setDialog({ kind: 'update' }) }}>Update Synchronization Resources</button>
      </div>
      <table class="grid" data-testid="replicas">
        <thead><tr><th>Replica Instance ID</th><th>Region</th><th>Synchronization Type</th><th>Status</th><th>Associated</th><th>Actions</th></tr></thead>
        <tbody>${task.Replicas.map(r => html`
          <tr data-replica=${r.ClusterId}><td class="mono">${r.ClusterId}</td><td>${r.Region}</td><td>${r.SyncType}</td><td><${Badge} state=${r.State} /></td>
            <td>${time(r.AssociatedAt)}${r.DisassociatedAt ? ` (removed ${time(r.DisassociatedAt)})` : ''}</td>
            <td class="actions"><a class="link" href="${base}/resources/${r.ClusterId}">View Synchronized Resources</a>
              ${r.State === 'ASSOCIATED' ? html`<button class="link danger" onClick=${() => { setDialog({ kind: 'remove', replica: r }) }}>Remove Replica Instance</button>` : null}</td></tr>`)}</tbody>
      </table>` : html`<${Resources} live=${live} task=${task} replica=${replica} base=${base} />`}
    ${dialog?.kind === 'add' ? html`<${AddReplica} live=${live} task=${task} onClose=${() => { setDialog(undefined) }} />` : null}
    ${dialog?.kind === 'update' ? html`<${UpdateResources} live=${live} task=${task} onClose=${() => { setDialog(undefined) }} />` : null}
    ${dialog?.kind === 'remove' ? html`<${RemoveReplica} live=${live} task=${task} replica=${dialog.replica} onClose=${() => { setDialog(undefined) }} />` : null}`
}

function describeScope (scope) {
  const parts = []
  if (scope?.Keys?.All) parts.push('all keys')
  if (scope?.Keys?.Owners?.length) parts.push(`keys of ${scope.Keys.Owners.join(', ')}`)
  if (scope?.Keys?.Handles?.length) parts.push(`keys ${scope.Keys.Handles.join(', ')}`)
  if (scope?.Users?.length) parts.push(`users ${scope.Users.join(', ')}`)
  return parts.join('; ') || 'nothing selected'
}

function AddReplica ({ live, task, onClose }) {
  const taken = new Set(task.Replicas.map(r => r.ClusterId))
  const primary = clusterById(live, task.PrimaryClusterId)
  const candidates = clustersOf(live).filter(c => c.id !== null && c.region !== task.PrimaryRegion && !taken.has(c.id))
  const [replica, setReplica] = useState(candidates[0]?.id ?? '')
  const [type, setType] = useState('KEYS')
  const action = useAction()
  const chosen = clusterById(live, replica)
  return html`<${Dialog} title="Add Replica Instance" onClose=${onClose}>
    <p class="muted">Select a replica instance and a synchronization type. The replica must be of the primary's lineage (${primary?.lineage ?? '?'}) in another region.</p>
    <label class="field">Replica instance <select id="add-replica-instance" value=${replica} onChange=${e => { setReplica(e.currentTarget.value) }}>
      ${candidates.map(c => html`<option value=${c.id}>${c.region}/${c.name} (${c.id})${c.lineage !== primary?.lineage ? ' — another lineage' : ''}</option>`)}</select></label>
    <label class="field">Synchronization type <select id="add-replica-type" value=${type} onChange=${e => { setType(e.currentTarget.value) }}><option value="KEYS">Keys</option><option value="KEYS_AND_USERS">Keys and users</option></select></label>
    ${candidates.length === 0 ? html`<p class="muted">No cluster can be added: every cluster in another region is a replica already, or was removed (a removed replica cannot be associated again).</p>` : null}
    ${action.view}
    <div class="dialog-buttons">
      <button class="primary" disabled=${action.busy || chosen === undefined} onClick=${() => action.run('add replica instance', 'sync/associate', { region: task.PrimaryRegion, ClusterId: task.PrimaryClusterId, ReplicaClusterId: replica, ReplicaRegion: chosen.region, SyncType: type }, onClose)}>OK</button>
      <button onClick=${onClose}>Cancel</button>
    </div>
  <//>`
}

function UpdateResources ({ live, task, onClose }) {
  const primary = clusterById(live, task.PrimaryClusterId)
  const contents = live.hsms?.clusters?.[`${primary?.region}/${primary?.name}`]?.hsms?.find(h => h.error === undefined)
  const users = (contents?.users ?? []).filter(u => u.type === 'CU' || u.type === 'CO').map(u => u.name)
  const keys = contents?.keys ?? []
  const scope = task.Scope ?? {}
  const [all, setAll] = useState(false)
  const [owners, setOwners] = useState([])
  const [handles, setHandles] = useState([])
  const [addUsers, setAddUsers] = useState([])
  const action = useAction()
  const toggle = (list, set, value) => { set(list.includes(value) ? list.filter(v => v !== value) : [...list, value]) }
  const selectedUser = u => (scope.Users ?? []).includes(u)
  const selectedOwner = o => (scope.Keys?.Owners ?? []).includes(o)
  const selectedHandle = k => scope.Keys?.All === true || (scope.Keys?.Handles ?? []).includes(k.handle) || selectedOwner(k.owner)
  const adding = all || owners.length > 0 || handles.length > 0 || addUsers.length > 0
  const submit = () => {
    const Keys = {}
    if (all) Keys.All = true
    if (owners.length > 0) Keys.Owners = owners
    if (handles.length > 0) Keys.Handles = handles
    void action.run('update synchronization resources', 'sync/add-resources', { region: task.PrimaryRegion, ClusterId: task.PrimaryClusterId, Scope: { ...(Object.keys(Keys).length > 0 ? { Keys } : {}), ...(addUsers.length > 0 ? { Users: addUsers } : {}) } }, onClose)
  }
  return html`<${Dialog} title="Update Synchronization Resources" onClose=${onClose}>
    <p class="notice" data-testid="add-only">You can only add resources to synchronize. Removing previously selected resources is not supported.</p>
    <p class="muted">Selected now: ${describeScope(scope)}. Those stay selected.</p>
    <fieldset><legend>Keys</legend>
      <label class="check"><input type="checkbox" checked=${scope.Keys?.All === true || all} disabled=${scope.Keys?.All === true} onChange=${() => { setAll(!all) }} /> All keys</label>
      ${[...new Set(keys.map(k => k.owner))].map(o => html`<label class="check"><input type="checkbox" checked=${selectedOwner(o) || owners.includes(o) || scope.Keys?.All === true} disabled=${selectedOwner(o) || scope.Keys?.All === true} onChange=${() => { toggle(owners, setOwners, o) }} /> every key of ${o}</label>`)}
      ${keys.map(k => html`<label class="check"><input type="checkbox" checked=${selectedHandle(k) || handles.includes(k.handle)} disabled=${selectedHandle(k)} onChange=${() => { toggle(handles, setHandles, k.handle) }} /> key ${k.handle} ${k.label ? `(${k.label})` : ''} of ${k.owner}</label>`)}
    </fieldset>
    <fieldset><legend>Users</legend>
      ${users.map(u => html`<label class="check"><input type="checkbox" checked=${selectedUser(u) || addUsers.includes(u)} disabled=${selectedUser(u)} onChange=${() => { toggle(addUsers, setAddUsers, u) }} /> ${u}</label>`)}
    </fieldset>
    ${action.view}
    <div class="dialog-buttons">
      <button class="primary" disabled=${action.busy || !adding} onClick=${submit}>OK</button>
      <button onClick=${onClose}>Cancel</button>
    </div>
  <//>`
}

function RemoveReplica ({ live, task, replica, onClose }) {
  const action = useAction()
  return html`<${Dialog} title="Remove Replica Instance" onClose=${onClose}>
    <p>Remove replica instance <strong>${clusterName(live, replica.ClusterId)}</strong> (<span class="mono">${replica.ClusterId}</span>) from the synchronization task of ${clusterName(live, task.PrimaryClusterId)}?</p>
    <div class="warning" data-testid="irreversible">${REMOVE_TEXT}</div>
    ${action.view}
    <div class="dialog-buttons">
      <button class="primary danger" disabled=${action.busy} onClick=${() => action.run('remove replica instance', 'sync/disassociate', { region: task.PrimaryRegion, ClusterId: task.PrimaryClusterId, ReplicaClusterId: replica.ClusterId, Confirm: true }, onClose)}>OK</button>
      <button onClick=${onClose}>Cancel</button>
    </div>
  <//>`
}

function Resources ({ live, task, replica, base }) {
  const entry = live.sync?.resources?.[task.PrimaryClusterId]
  const [status, setStatus] = useState('')
  const records = (entry?.records ?? []).filter(r => (replica === undefined || r.ReplicaClusterId === replica) && (status === '' || r.Status === status))
  return html`
    <div class="form-row">
      <label>Synchronization Status <select id="resource-status" value=${status} onChange=${e => { setStatus(e.currentTarget.value) }}>
        <option value="">All</option><option value="SYNCHRONIZED">SYNCHRONIZED</option><option value="SYNCHRONIZING">SYNCHRONIZING</option><option value="FAILED">FAILED</option></select></label>
      ${replica === undefined ? null : html`<span class="chip">Replica Instance ID: ${replica} <a href="${base}/resources" title="all replica instances">×</a></span>`}
    </div>
    ${entry?.error ? html`<p class="bad-text">${entry.error}</p>` : null}
    <table class="grid" data-testid="resources">
      <thead><tr><th>Resource ID</th><th>Type</th><th>Replica Instance ID</th><th>Synchronization Status</th><th>Failure Cause</th><th>Last success</th><th>Attempts</th></tr></thead>
      <tbody>${records.length === 0 ? html`<tr><td colspan="7" class="muted">No resources${status ? ` with status ${status}` : ''}.</td></tr>` : records.map(r => html`
        <tr data-resource=${`${r.ResourceType}:${r.ResourceId}:${r.ReplicaClusterId}`} data-status=${r.Status}>
          <td class="mono">${r.ResourceId}</td><td>${r.ResourceType}</td><td class="mono">${r.ReplicaClusterId}</td><td><${Badge} state=${r.Status} /></td>
          <td>${r.FailureCause === null ? '—' : html`<strong>${r.FailureCause.Code}</strong> <span class="cause">${r.FailureCause.Message}</span>`}</td>
          <td>${time(r.LastSuccessAt)}</td><td>${r.Attempts}</td></tr>`)}</tbody>
    </table>`
}

// ---------------------------------------------------------------------------------------------
// 6. Scenario reports
// ---------------------------------------------------------------------------------------------

function Reports ({ live, run }) {
  const runs = live.reports?.runs ?? []
  const chosen = run ?? runs[0]?.name
  const [timeline, setTimeline] = useState(undefined)
  const modified = runs.find(r => r.name === chosen)?.modifiedAt
  useEffect(() => {
    if (chosen === undefined) return
    void fetch(`/api/report?run=${encodeURIComponent(chosen)}`).then(r => r.json()).then(setTimeline)
  }, [chosen, modified])
  return html`
    <h1>Scenario reports</h1>
    <p class="muted">Runs of <code>hsmlab scenario run --dir ${lab(live)?.dir ?? 'DIR'}</code> leave their history in the lab directory.</p>
    <div class="actions-row">${runs.map(r => html`<a class="chip ${r.name === chosen ? 'active' : ''}" href="#/reports/${r.name}">${r.name} · ${r.report?.verdict ?? 'running'}</a>`)}</div>
    ${runs.length === 0 ? html`<p class="muted">No scenario run in this lab yet.</p>` : timeline === undefined ? html`<p class="muted">Reading…</p>` : html`<${RunTimeline} timeline=${timeline} />`}`
}

function RunTimeline ({ timeline }) {
  if (timeline.error) return html`<p class="bad-text">${timeline.error}</p>`
  const clients = [...new Set(timeline.operations.map(o => o.client))].sort()
  // The axis spans the workload and its faults (the notes after it, settling and checking, are listed below).
  const end = Math.max(1, ...timeline.operations.map(o => o.completedAtMs ?? o.invokedAtMs), ...timeline.faults.map(f => f.toMs ?? f.fromMs))
  const step = [0.5, 1, 2, 5, 10, 30, 60, 120, 300].find(s => end / 1000 / s <= 10) ?? 600
  const ticks = Array.from({ length: Math.floor(end / 1000 / step) + 1 }, (_, i) => i * step)
  const W = 1000
  const ROW = 22
  const x = ms => 140 + (ms / end) * (W - 150)
  const report = timeline.report
  return html`
    ${report === undefined ? null : html`
      <div class="verdict ${report.verdict === 'pass' ? 'ok' : 'bad'}" data-testid="verdict">verdict <strong>${report.verdict}</strong>${` · exit ${report.exitCode} · seed ${report.seed} · total ${((report.timings?.totalMs ?? 0) / 1000).toFixed(1)} s`}${report.timings?.labDownMs === undefined ? '' : ` · lab down ${(report.timings.labDownMs / 1000).toFixed(1)} s`}</div>
      ${report.failure ? html`<pre class="failure">${report.failure}</pre>` : null}
      ${(report.violations ?? []).length > 0 ? html`<ul class="violations">${report.violations.map(v => html`<li><strong>${v.invariant ?? v.checker ?? ''}</strong> ${v.message ?? JSON.stringify(v)}</li>`)}</ul>` : null}`}
    <div class="legend"><span><i class="l op-ok"></i> ok</span><span><i class="l op-failed"></i> failed</span><span><i class="l op-unknown"></i> unknown</span><span><i class="l fault"></i> fault in force</span></div>
    <svg class="run" viewBox="0 0 ${W} ${clients.length * ROW + 40}" width=${W} height=${clients.length * ROW + 40} data-testid="run-timeline">
      ${ticks.map(s => html`<line class="tick" x1=${x(s * 1000)} x2=${x(s * 1000)} y1="0" y2=${clients.length * ROW + 20} /><text x=${x(s * 1000)} y=${clients.length * ROW + 34} text-anchor="middle" class="small">${s} s</text>`)}
      ${timeline.faults.map(f => html`<rect class="fault-span" x=${x(f.fromMs)} y="0" width=${Math.max(2, x(f.toMs ?? end) - x(f.fromMs))} height=${clients.length * ROW + 20}><title>${f.label}</title></rect>`)}
      ${clients.map((c, i) => html`<text x="4" y=${i * ROW + 16} class="small">${c}</text>`)}
      ${timeline.operations.map(o => html`<rect class="op ${o.outcome}" x=${x(o.invokedAtMs)} y=${clients.indexOf(o.client) * ROW + 4} width=${Math.max(2, x(o.completedAtMs ?? end) - x(o.invokedAtMs))} height=${ROW - 8}><title>#${o.id} ${o.op} on ${o.cluster}: ${o.outcome}${o.cause ? ` — ${o.cause}` : ''}</title></rect>`)}
    </svg>
    <h2>Notes</h2>
    <ol class="timeline">${timeline.notes.map(n => html`<li><span class="when">${(n.atMs / 1000).toFixed(2)} s</span><span class="what">${n.what}</span></li>`)}</ol>`
}

// ---------------------------------------------------------------------------------------------
// 7. Exercises (terminal)
// ---------------------------------------------------------------------------------------------

/** A little Markdown, as text nodes (never HTML): paragraphs, fenced blocks, lists, `code` and **bold**. */
function Markdown ({ text }) {
  const blocks = []
  const lines = (text ?? '').split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('```')) {
      const code = []
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) code.push(lines[i])
      blocks.push(html`<pre class="code">${code.join('\n')}</pre>`)
    } else if (/^\s*([-*]|\d+\.)\s/.test(lines[i])) {
      const items = []
      for (; i < lines.length && /^\s*([-*]|\d+\.)\s/.test(lines[i]); i++) items.push(lines[i].replace(/^\s*([-*]|\d+\.)\s/, ''))
      i--
      blocks.push(html`<ul>${items.map(item => html`<li>${inline(item)}</li>`)}</ul>`)
    } else if (lines[i].trim() !== '' && !lines[i].startsWith('#')) {
      const para = []
      for (; i < lines.length && lines[i].trim() !== '' && !lines[i].startsWith('```'); i++) para.push(lines[i])
      i--
      blocks.push(html`<p>${inline(para.join(' '))}</p>`)
    }
  }
  return blocks
}

function inline (text) {
  return text.split(/(`[^`]+`|\*\*[^*]+\*\*)/).map(part => part.startsWith('`') && part.endsWith('`') && part.length > 1
    ? html`<code>${part.slice(1, -1)}</code>`
    : part.startsWith('**') && part.endsWith('**') && part.length > 4 ? html`<strong>${part.slice(2, -2)}</strong>` : part)
}

function Exercises ({ live }) {
  const exercise = live.exercise
  const action = useAction()
  return html`
    <h1>Exercises</h1>
    <div class="exercise-layout">
      <section class="panel exercise-panel" data-testid="exercise">
        ${exercise?.running !== true ? html`
          <h2>No exercise running</h2>
          <p class="muted">Start one in the terminal: <code>hsmlab exercise list</code>, then <code>hsmlab exercise start NAME</code>. Its task and steps show here.</p>` : html`
          <h2>${exercise.title}</h2>
          <p class="muted">${exercise.name} · ${exercise.level} · about ${exercise.minutes} minutes · seed ${exercise.seed}</p>
          <div class="task"><${Markdown} text=${exercise.intro} /></div>
          <ol class="steps">${exercise.steps.map((s, i) => html`
            <li class=${s.passed === true ? 'done' : s.passed === false ? 'failing' : 'todo'} data-step=${s.id} data-passed=${s.passed === undefined ? 'unknown' : String(s.passed)}>
              <strong>Step ${i + 1}: ${s.title}</strong>
              <div class="step-text"><${Markdown} text=${s.text} /></div>
              ${(s.reasons ?? []).length > 0 ? html`<ul class="reasons">${s.reasons.map(r => html`<li>${r}</li>`)}</ul>` : null}
            </li>`)}</ol>
          ${exercise.check === null ? null : html`<p class="check-result ${exercise.check.passed ? 'ok' : 'bad'}" data-testid="check-result">${exercise.check.passed ? 'Every step passes: exercise done.' : `${exercise.steps.filter(s => s.passed).length} of ${exercise.steps.length} steps done.`}</p>`}
          <div class="actions-row">
            <button class="primary" id="exercise-check" disabled=${action.busy} onClick=${() => action.run('check', 'exercise/check', {})}>Check</button>
            <button id="exercise-hint" disabled=${action.busy} onClick=${() => action.run('hint', 'exercise/hint', {})}>Hint</button>
          </div>
          ${action.view}
          ${exercise.hints.length === 0 ? null : html`<ol class="hints" data-testid="hints">${exercise.hints.map(h => html`<li><span class="muted">Hint ${h.number} of ${h.of}${h.step ? ` for “${h.step.title}”` : ''}:</span> ${inline(h.text)}</li>`)}</ol>`}`}
      </section>
      <section class="panel terminal-panel"><${Terminal} /></section>
    </div>`
}

function Terminal () {
  const ref = useRef(null)
  const [state, setState] = useState('connecting')
  useEffect(() => {
    let disposed = false
    let cleanup = () => {}
    void Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]).then(([{ Terminal: XTerm }, { FitAddon }]) => {
      if (disposed) return
      const term = new XTerm({ fontSize: 13, fontFamily: 'ui-monospace, Menlo, Consolas, monospace', theme: { background: '#0f172a' }, cursorBlink: true })
      const fit = new FitAddon()
      term.loadAddon(fit)
      term.open(ref.current)
      fit.fit()
      const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/terminal`)
      const send = message => { if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message)) }
      socket.onopen = () => { setState('open'); send({ type: 'resize', cols: term.cols, rows: term.rows }); term.focus() }
      socket.onmessage = event => { term.write(event.data) }
      socket.onclose = () => { setState('closed') }
      term.onData(data => { send({ type: 'input', data }) })
      const onResize = () => { fit.fit(); send({ type: 'resize', cols: term.cols, rows: term.rows }) }
      addEventListener('resize', onResize)
      window.hsmlabTerminal = term
      cleanup = () => { removeEventListener('resize', onResize); socket.close(); term.dispose() }
    })
    return () => { disposed = true; cleanup() }
  }, [])
  return html`<div class="terminal-head">Terminal <span class="muted">(bash in the lab's directory; the shells and aws on its PATH)</span> <span class="live ${state === 'open' ? 'on' : 'off'}" data-testid="terminal-state">${state}</span></div><div class="terminal" ref=${ref} data-testid="terminal"></div>`
}

const root = document.getElementById('app')
root.textContent = ''
render(html`<${App} />`, root)
