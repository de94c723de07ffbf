/**
 * Goal: docker-compose.yml runs the default lab as containers, one per process, and cannot drift
 * from packages/lab/topologies/default.json: a control-plane service per region, on its region's
 * network and the WAN; an HSM host service per HSM (the HSM's container), in the availability
 * zones the lab puts the HSMs in, at a fixed address of its region's network that its control
 * plane's hosts file names; the HSM counts, the clone and the users the lab creates (x-hsmlab);
 * the ports, the regions file and the fault proxy's links agreeing with each other; the `lab`
 * service building exactly those clusters against exactly those control planes; the shells on the
 * lab's configuration files. And the services, run as the file says, really make that lab.
 *
 * Method: the file is parsed (yaml) and compared with the topology; `docker-compose config -q`
 * checks it as Compose does, when docker-compose is on PATH (skipped with a note otherwise; CI
 * installs it). Without a Docker engine, every service's command then runs as a local process,
 * in the order its depends_on says, with the file's own arguments: each container gets a loopback
 * address of its own (127.77.0.x, standing for its service name and its fixed network addresses),
 * each named volume a temporary directory, and docker/*.json files are rewritten with those
 * addresses. Health checks are the file's. Every HSM runs as the child of its host's process, at
 * its host's address, not of a control plane. Then the real CMU and KMU bins, as the `cmu` and
 * `kmu` services run them, log in as the topology's users; a partition of the fault proxy's `wan`
 * group makes a copy across the regions fail until it is healed; the long-running services are
 * stopped as `docker compose down` stops them (SIGTERM, dependents first) and started again on
 * their volumes, and the lab is whole again. What needs an engine (the Dockerfile's build,
 * networks, published ports, init, restarts) is test/e2e/docker-lab.test.ts, on Podman.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { parse } from 'yaml'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { DEFAULT_ADMIN_NAME } from '@hsmlab/hsm'
import { DEFAULT_TOPOLOGY_PATH, LabLayout, availabilityZonesOf, readTopology } from '@hsmlab/lab'
import type { Topology } from '@hsmlab/lab'
import { spawnProcess, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'

const run = promisify(execFile)
const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '')
const COMPOSE_FILE = join(root, 'docker-compose.yml')

interface Healthcheck { test: string[], interval?: string, timeout?: string, retries?: number, start_period?: string }
interface Service {
  build?: string
  image?: string
  init?: boolean
  entrypoint?: string[]
  command?: string[]
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  networks?: string[] | Record<string, { ipv4_address?: string } | null>
  network_mode?: string
  ports?: string[]
  volumes?: string[]
  healthcheck?: Healthcheck
  profiles?: string[]
  restart?: string
  stop_grace_period?: string
  stdin_open?: boolean
  tty?: boolean
}
interface ComposeFile {
  'x-hsmlab': { topology: string, regions: Record<string, { controlPlane: string, clusters: Record<string, unknown> }> }
  services: Record<string, Service>
  networks: Record<string, { internal?: boolean, ipam?: { config: Array<{ subnet: string, ip_range?: string }> } }>
  volumes: Record<string, unknown>
}

const compose = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile
const services = compose.services

function service (name: string): Service {
  const s = services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service ${name}`)
  return s
}

/** What follows `flag` in a command; throws when it is not there. */
function argAfter (argv: string[] | undefined, flag: string): string {
  const at = (argv ?? []).indexOf(flag)
  const value = at === -1 ? undefined : argv?.[at + 1]
  if (value === undefined) throw new Error(`no ${flag} in ${JSON.stringify(argv)}`)
  return value
}

function networksOf (s: Service): Record<string, { ipv4_address?: string } | null> {
  const n = s.networks ?? {}
  return Array.isArray(n) ? Object.fromEntries(n.map(name => [name, null])) : n
}

/** `volume:/target[:ro]` entries of a service: every mount is a named volume of the file. */
function mountsOf (s: Service): Array<{ volume: string, target: string, readOnly: boolean }> {
  return (s.volumes ?? []).map(v => {
    const [volume = '', target = '', mode] = v.split(':')
    expect(Object.keys(compose.volumes), `volume of ${v}`).toContain(volume)
    return { volume, target, readOnly: mode === 'ro' }
  })
}

/** The argv a service runs: entrypoint + command, as Compose joins them (the image has no ENTRYPOINT of its own that changes `node ...`). */
function argvOf (s: Service): string[] {
  return [...(s.entrypoint ?? []), ...(s.command ?? [])]
}

function ipInSubnet (ip: string, subnet: string): boolean {
  const [base = '', bits = '32'] = subnet.split('/')
  const toInt = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0)
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0
  return ((toInt(ip) & mask) >>> 0) === ((toInt(base) & mask) >>> 0)
}

/** The HSM hosts of a region: its control plane's hosts file (`--hsm-hosts`). */
function hostsOf (region: string): Array<{ address: string, availabilityZone: string, url: string }> {
  return JSON.parse(readFileSync(join(root, argAfter(argvOf(service(`cp-${region}`)), '--hsm-hosts')), 'utf8')) as Array<{ address: string, availabilityZone: string, url: string }>
}

/** The x-hsmlab block the topology calls for. */
function summaryOf (topology: Topology): ComposeFile['x-hsmlab'] {
  return {
    topology: 'packages/lab/topologies/default.json',
    regions: Object.fromEntries(topology.regions.map(r => [r.name, {
      controlPlane: `cp-${r.name}`,
      clusters: Object.fromEntries(r.clusters.map(c => [c.name, {
        hsms: c.hsms,
        ...(c.activate === undefined ? {} : { users: [`CO ${DEFAULT_ADMIN_NAME} ${c.activate.admin}`, ...c.users.map(u => `${u.type} ${u.name} ${u.password}`)] }),
        ...(c.cloneOf === undefined ? {} : { cloneOf: `${c.cloneOf.region}/${c.cloneOf.cluster}` })
      }]))
    }]))
  }
}

async function dockerCompose (): Promise<boolean> {
  try {
    await run('docker-compose', ['version'])
    return true
  } catch {
    return false
  }
}

describe('docker-compose.yml against the default topology', async () => {
  const topology = await readTopology(DEFAULT_TOPOLOGY_PATH)
  const regionNames = topology.regions.map(r => r.name)

  it('describes the default lab: regions, clusters, HSM counts, the clone, the users (x-hsmlab)', () => {
    expect(DEFAULT_TOPOLOGY_PATH).toBe(join(root, compose['x-hsmlab'].topology))
    expect(compose['x-hsmlab']).toEqual(summaryOf(topology))
  })

  it('has one control plane per region, on its own region network and the WAN, with the lab\'s settings', () => {
    const keyVolumes = new Set<string>()
    for (const region of topology.regions) {
      const name = compose['x-hsmlab'].regions[region.name]?.controlPlane ?? ''
      const cp = service(name)
      const argv = argvOf(cp)
      expect(argv.slice(0, 2)).toEqual(['node', 'packages/control-plane/bin/control-plane.js'])
      expect(argAfter(argv, '--region')).toBe(region.name)
      expect(cp.environment?.HSMLAB_REGION).toBe(region.name)
      // The API on every interface, on its region's network (where its HSM hosts are) and the WAN.
      expect(argAfter(argv, '--host')).toBe('0.0.0.0')
      expect(Object.keys(networksOf(cp)).sort()).toEqual([region.name, 'wan'])
      expect(compose.networks[region.name]?.internal).toBe(true)
      // Its HSMs on its region's HSM hosts, each of which it waits for.
      expect(argv).not.toContain('--hsm-host')
      for (const host of hostsOf(region.name)) expect(cp.depends_on?.[new URL(host.url).hostname]?.condition, host.url).toBe('service_healthy')
      // The quotas fit the region's part of the topology, as `hsmlab up` raises them for its own control planes.
      expect(Number(argAfter(argv, '--clusters-max'))).toBeGreaterThanOrEqual(region.clusters.length)
      expect(Number(argAfter(argv, '--hsms-max'))).toBeGreaterThanOrEqual(region.clusters.reduce((n, c) => n + c.hsms, 0))
      expect(argAfter(argv, '--transition-delay-ms')).toBe('0')
      // Its data on its own volume; the manufacturer key on the volume every region shares.
      const mounts = mountsOf(cp)
      const data = mounts.find(m => argAfter(argv, '--data-dir').startsWith(`${m.target}/`))
      expect(data, 'the data directory lies on a volume').toBeDefined()
      expect(data?.readOnly).toBe(false)
      const key = mounts.find(m => argAfter(argv, '--hsm-manufacturer-key-file').startsWith(`${m.target}/`))
      expect(key?.readOnly).toBe(true)
      keyVolumes.add(key?.volume ?? '')
      expect(cp.depends_on?.['manufacturer-key']?.condition).toBe('service_completed_successfully')
      // The peer secret its internal paths require, read-only on the volume every region shares (issue 12).
      const secret = mounts.find(m => argAfter(argv, '--peer-secret-file').startsWith(`${m.target}/`))
      expect(secret).toEqual({ volume: mountsOf(service('peer-secret'))[0]?.volume, target: secret?.target, readOnly: true })
      expect(cp.depends_on?.['peer-secret']?.condition).toBe('service_completed_successfully')
      expect(cp.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${argAfter(argv, '--port')}/_hsmlab/health`)
      expect(cp.restart).toBe('unless-stopped')
    }
    expect(keyVolumes.size).toBe(1)
    expect(argvOf(service('manufacturer-key'))).toEqual(['node', 'docker/manufacturer-key.js', `${mountsOf(service('manufacturer-key'))[0]?.target ?? ''}/manufacturer.key`])
    expect(mountsOf(service('manufacturer-key'))[0]?.volume).toBe([...keyVolumes][0])
    expect(argvOf(service('peer-secret'))).toEqual(['node', 'docker/peer-secret.js', `${mountsOf(service('peer-secret'))[0]?.target ?? ''}/peer.secret`])
    // Every network is a region's or the WAN.
    expect(Object.keys(compose.networks).sort()).toEqual([...regionNames, 'wan'].sort())
  })

  it('has one HSM host per HSM of the topology, in the availability zones the lab uses, at a fixed address its control plane\'s hosts file names', () => {
    const hostServices = Object.keys(services).filter(name => name.startsWith('hsm-'))
    const listed: string[] = []
    for (const region of topology.regions) {
      // As many hosts in each zone as the lab puts HSMs there (CreateHsm spreads a cluster's HSMs over its zones).
      const wanted = new Map<string, number>()
      for (const cluster of region.clusters) {
        const zones = availabilityZonesOf(region.name, cluster.hsms)
        for (let i = 0; i < cluster.hsms; i++) wanted.set(zones[i % zones.length] ?? '', (wanted.get(zones[i % zones.length] ?? '') ?? 0) + 1)
      }
      const hosts = hostsOf(region.name)
      const perZone = new Map<string, number>()
      for (const h of hosts) perZone.set(h.availabilityZone, (perZone.get(h.availabilityZone) ?? 0) + 1)
      expect(Object.fromEntries(perZone)).toEqual(Object.fromEntries(wanted))
      for (const h of hosts) {
        const url = new URL(h.url)
        const name = url.hostname
        listed.push(name)
        expect(name.startsWith(`hsm-${h.availabilityZone.slice(0, -1)}-${h.availabilityZone.slice(-1)}`), `${name} is named after its zone ${h.availabilityZone}`).toBe(true)
        const host = service(name)
        const argv = argvOf(host)
        expect(argv.slice(0, 2)).toEqual(['node', 'packages/control-plane/bin/hsm-host.js'])
        // Its HSM listens on the host's fixed address in the zone's region network: the address the hosts file gives.
        const networks = networksOf(host)
        expect(Object.keys(networks)).toEqual([region.name])
        expect(networks[region.name]?.ipv4_address).toBe(h.address)
        expect(argAfter(argv, '--address')).toBe(h.address)
        expect(host.environment?.HSMLAB_HSM_ADDRESS).toBe(h.address)
        expect(ipInSubnet(h.address, compose.networks[region.name]?.ipam?.config[0]?.subnet ?? '')).toBe(true)
        // ...and outside the range the engine hands out to containers without a fixed address, so
        // none of those (a `run`, the control plane) can hold it when the host is created.
        const dynamicRange = compose.networks[region.name]?.ipam?.config[0]?.ip_range
        expect(dynamicRange, `network ${region.name} has an ip_range for dynamic addresses`).toBeDefined()
        expect(ipInSubnet(h.address, dynamicRange ?? ''), `${h.address} lies outside ${dynamicRange ?? ''}`).toBe(false)
        expect(argAfter(argv, '--host')).toBe('0.0.0.0')
        expect(url.port).toBe(argAfter(argv, '--port'))
        expect(host.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${argAfter(argv, '--port')}/hsm`)
        // The HSM's data on a volume of its own; the manufacturer key read-only, as the control planes have it.
        const mounts = mountsOf(host)
        const data = mounts.find(m => argAfter(argv, '--data-dir').startsWith(`${m.target}/`))
        expect(data?.readOnly).toBe(false)
        const others = Object.entries(services).filter(([n]) => n !== name).flatMap(([, s]) => mountsOf(s).map(m => m.volume))
        expect(others, `the volume of ${name}`).not.toContain(data?.volume)
        const key = mounts.find(m => argAfter(argv, '--hsm-manufacturer-key-file').startsWith(`${m.target}/`))
        expect(key).toEqual({ volume: mountsOf(service('manufacturer-key'))[0]?.volume, target: key?.target, readOnly: true })
        expect(host.depends_on?.['manufacturer-key']?.condition).toBe('service_completed_successfully')
        expect(host.restart).toBe('unless-stopped')
        // Time for its HSM's graceful stop (7 s) before Compose kills the container.
        expect(durationMs(host.stop_grace_period, 10_000)).toBeGreaterThan(7_000)
      }
      expect(new Set(hosts.map(h => h.address)).size).toBe(hosts.length)
      // A container `up` creates before this region's HSM hosts cannot take an address on demand
      // there: the engine could hand it a host's (Podman once gave the fault proxy 10.201.1.21).
      const waitsFor = (name: string, target: string, seen = new Set<string>()): boolean =>
        Object.keys(service(name).depends_on ?? {}).some(d => d === target || (!seen.has(d) && (seen.add(d), waitsFor(d, target, seen))))
      const regionHosts = hostServices.filter(name => Object.hasOwn(networksOf(service(name)), region.name))
      for (const [name, s] of Object.entries(services)) {
        if (name.startsWith('hsm-') || s.profiles !== undefined || !Object.hasOwn(networksOf(s), region.name)) continue
        if (regionHosts.every(host => waitsFor(name, host))) continue
        const fixed = networksOf(s)[region.name]?.ipv4_address
        expect(fixed, `${name} is created before the HSM hosts of ${region.name}: it needs a fixed address there`).toBeDefined()
        expect(ipInSubnet(fixed ?? '', compose.networks[region.name]?.ipam?.config[0]?.ip_range ?? ''), `${name}'s ${fixed ?? ''}`).toBe(false)
        expect(hosts.map(h => h.address), `${name}'s ${fixed ?? ''}`).not.toContain(fixed)
      }
    }
    expect(hostServices.sort()).toEqual(listed.sort())
  })

  it('routes region to region through the fault proxy on the WAN (links wan/<from>-><to>), to each control plane\'s port', () => {
    const proxy = service('fault-proxy')
    const proxyArgv = argvOf(proxy)
    expect(proxyArgv.slice(0, 2)).toEqual(['node', 'packages/fault-proxy/bin/fault-proxy.js'])
    // On every network: each region's links listen there (the lab makes the peer and control links).
    expect(Object.keys(networksOf(proxy)).sort()).toEqual([...regionNames, 'wan'].sort())
    expect(argvOf(service('lab')).join(' ')).toContain(`--fault-proxy http://fault-proxy:${argAfter(proxyArgv, '--port')}`)
    const links = JSON.parse(readFileSync(join(root, argAfter(proxyArgv, '--config')), 'utf8')) as Array<{ name: string, listen: string, upstream: string, hsmlab?: { groups?: string[] } }>
    const apiOf = (region: string): string => `cp-${region}:${argAfter(argvOf(service(`cp-${region}`)), '--port')}`
    const used: string[] = []
    for (const from of regionNames) {
      const regions = JSON.parse(readFileSync(join(root, argAfter(argvOf(service(`cp-${from}`)), '--regions-file')), 'utf8')) as Record<string, string>
      expect(Object.keys(regions).sort()).toEqual([...regionNames].sort())
      // Its own region directly; every other one through its WAN link.
      expect(regions[from]).toBe(`http://${apiOf(from)}`)
      for (const to of regionNames.filter(r => r !== from)) {
        const url = new URL(regions[to] ?? '')
        expect(url.hostname).toBe('fault-proxy')
        const link = links.find(l => l.listen === `0.0.0.0:${url.port}`)
        expect(link).toEqual({ name: `wan/${from}->${to}`, listen: `0.0.0.0:${url.port}`, upstream: apiOf(to), hsmlab: { groups: [from, to] } })
        used.push(link?.name ?? '')
      }
    }
    // The client links: one per HSM of the topology, on a fixed port published on the host.
    const clientLinks = topology.regions.flatMap(r => r.clusters.flatMap(c => Array.from({ length: c.hsms }, (_, i) => `${r.name}/${c.name}/hsm-${i}`)))
    for (const name of clientLinks) {
      const link = links.find(l => l.name === name)
      expect(link?.listen, name).toMatch(/^0\.0\.0\.0:\d+$/)
      expect(proxy.ports, name).toContain(`127.0.0.1:${link?.listen.split(':')[1] ?? ''}:${link?.listen.split(':')[1] ?? ''}`)
      used.push(name)
    }
    expect(used.sort()).toEqual(links.map(l => l.name).sort())
    expect(proxy.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${argAfter(proxyArgv, '--port')}/version`)
  })

  it('publishes each API on its own host port, on 127.0.0.1 only', () => {
    const published = Object.entries(services).flatMap(([name, s]) => (s.ports ?? []).map(p => ({ name, p })))
    for (const { p } of published) expect(p).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
    const hostPorts = published.map(({ p }) => p.split(':')[1])
    expect(new Set(hostPorts).size).toBe(hostPorts.length)
    regionNames.forEach((region, i) => {
      const cp = service(`cp-${region}`)
      expect(cp.ports).toEqual([`127.0.0.1:${4001 + i}:${argAfter(argvOf(cp), '--port')}`])
    })
    expect(service('fault-proxy').ports?.[0]).toBe(`127.0.0.1:8474:${argAfter(argvOf(service('fault-proxy')), '--port')}`)
  })

  it('builds the lab with `hsmlab up` against those control planes, and opens the shells on its files', () => {
    const lab = service('lab')
    const argv = argvOf(lab)
    expect(argv.slice(0, 3)).toEqual(['node', 'packages/lab/bin/hsmlab.js', 'up'])
    expect(argAfter(argv, '--topology')).toBe(compose['x-hsmlab'].topology)
    const dir = argAfter(argv, '--dir')
    const given = argv.flatMap((a, i) => argv[i - 1] === '--control-plane' ? [a] : [])
    expect(given.sort()).toEqual(regionNames.map(r => `${r}=http://cp-${r}:${argAfter(argvOf(service(`cp-${r}`)), '--port')}`).sort())
    expect(Object.keys(networksOf(lab)).sort()).toEqual([...regionNames].sort())
    for (const region of regionNames) expect(lab.depends_on?.[`cp-${region}`]?.condition).toBe('service_healthy')
    expect(lab.depends_on?.['fault-proxy']?.condition).toBe('service_healthy')
    const labVolume = mountsOf(lab).find(m => m.target === dir)
    expect(labVolume?.readOnly).toBe(false)
    const layout = new LabLayout(dir)
    const [first] = topology.regions
    const shells: Array<[string, string[]]> = [
      ['cmu', ['node', 'packages/shells/bin/cloudhsm_mgmt_util.js', layout.cmuConfig(first?.name ?? '', first?.clusters[0]?.name ?? '')]],
      ['kmu', ['node', 'packages/shells/bin/key_mgmt_util.js', '--config', layout.kmuConfig]]
    ]
    for (const [name, expected] of shells) {
      const shell = service(name)
      expect(argvOf(shell)).toEqual(expected)
      expect(shell.profiles).toEqual(['tools'])
      expect(shell.depends_on?.lab?.condition).toBe('service_completed_successfully')
      expect(mountsOf(shell)).toEqual([{ volume: labVolume?.volume, target: dir, readOnly: true }])
      expect(Object.keys(networksOf(shell)).sort()).toEqual([...regionNames].sort())
      expect(shell.stdin_open === true && shell.tty === true).toBe(true)
    }
  })

  it('waits on each dependency the way it ends: health for servers, completion for one-shots', () => {
    for (const [name, s] of Object.entries(services)) {
      // The example application (profile `app`, docs/pkcs11.md) builds on the image with a Dockerfile of its own.
      if (s.profiles?.includes('app') !== true) {
        expect(s.build, `${name} builds the image`).toBe('.')
        expect(s.image).toBe('hsmlab:local')
      }
      expect(s.init).toBe(true)
      for (const [target, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(condition, `${name} → ${target}`).toBe(service(target).healthcheck === undefined ? 'service_completed_successfully' : 'service_healthy')
      }
    }
  })

  it('passes `docker-compose config -q`', async (context) => {
    if (!await dockerCompose()) context.skip('docker-compose is not on PATH (Debian: apt-get install docker-compose; .ci/run installs it)')
    const { stdout, stderr } = await run('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { cwd: root })
    expect(stdout + stderr).toBe('')
  })
})

/** Every process whose command line names `dir` (HSMs outlive a control plane killed with SIGKILL). */
function processesIn (dir: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) pids.push(Number(name))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}

/** The parent pid of a process (/proc/PID/stat, field 4). */
function parentOf (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

/** Milliseconds of a Compose duration (`20s`, `500ms`, `1m`). */
function durationMs (text: string | undefined, fallbackMs: number): number {
  const m = /^(\d+)(ms|s|m)$/.exec(text ?? '')
  if (m === null) return fallbackMs
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[m[2] as 'ms' | 's' | 'm']
}

/**
 * The file's services as local processes. Each container is a loopback address; what its
 * arguments, health check and docker/*.json files name — service host names (`cp-us-east-1:8080`),
 * the fixed addresses of the networks, 0.0.0.0 and 127.0.0.1 — becomes the addresses of the
 * matching processes; each named volume is a directory.
 */
class LocalCompose {
  readonly dir: string
  private readonly addressOf = new Map<string, string>()
  private readonly fixed = new Map<string, string>()

  constructor (dir: string) {
    this.dir = dir
    Object.keys(services).forEach((name, i) => { this.addressOf.set(name, `127.77.0.${i + 1}`) })
    for (const [name, s] of Object.entries(services)) {
      for (const n of Object.values(networksOf(s))) if (n?.ipv4_address !== undefined) this.fixed.set(n.ipv4_address, this.address(name))
    }
  }

  address (name: string): string {
    const a = this.addressOf.get(name)
    if (a === undefined) throw new Error(`no service ${name}`)
    return a
  }

  /** `text` as seen from service `own`'s stand-in. */
  hosts (text: string, own: string): string {
    let out = text.replace(/(^|[/"=@])([a-z][a-z0-9-]*):(\d+)/g, (m: string, pre: string, host: string, port: string) =>
      this.addressOf.has(host) ? `${pre}${this.address(host)}:${port}` : m)
    for (const [ip, local] of this.fixed) out = out.replace(new RegExp(`(?<![\\d.])${ip.replaceAll('.', '\\.')}(?![\\d.])`, 'g'), local)
    return out.replace(/(?<![\d.])(0\.0\.0\.0|127\.0\.0\.1)(?![\d.])/g, this.address(own))
  }

  /** One argument as the process of service `name` gets it. */
  arg (name: string, arg: string): string {
    if (arg.startsWith('/')) {
      const mount = mountsOf(service(name)).filter(m => arg === m.target || arg.startsWith(`${m.target}/`))
        .sort((a, b) => b.target.length - a.target.length)[0]
      if (mount === undefined) throw new Error(`${name}: ${arg} lies on no volume, so it would not outlive the container`)
      const path = join(this.dir, 'volumes', mount.volume, arg.slice(mount.target.length))
      return path.replace(/\/$/, '')
    }
    if (/^docker\/[\w-]+\.json$/.test(arg)) {
      const file = join(this.dir, 'files', `${name}-${basename(arg)}`)
      mkdirSync(join(this.dir, 'files'), { recursive: true })
      writeFileSync(file, this.hosts(readFileSync(join(root, arg), 'utf8'), name))
      return file
    }
    return this.hosts(arg, name)
  }

  env (name: string): NodeJS.ProcessEnv {
    return Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, this.hosts(v, name)]))
  }

  /** Starts service `name` (its own argv, or `argv` as `docker compose run SERVICE ARGS` gives it). */
  start (name: string, argv: string[] = argvOf(service(name))): SpawnedProcess {
    for (const m of mountsOf(service(name))) mkdirSync(join(this.dir, 'volumes', m.volume), { recursive: true })
    const [node, ...args] = argv
    expect(node, `${name} runs node`).toBe('node')
    return spawnProcess(process.execPath, args.map(a => this.arg(name, a)), { cwd: root, env: this.env(name), name })
  }

  /** Runs a one-shot service to its end; resolves with what it printed, fails unless it exits 0. */
  async oneShot (name: string, argv?: string[], input?: string): Promise<string> {
    const proc = this.start(name, argv)
    if (input !== undefined) {
      proc.write(input)
      proc.child.stdin.end()
    }
    const code = await proc.exited
    expect(code, `${name} exit code; stderr:\n${proc.stderr()}\nstdout:\n${proc.stdout()}`).toBe(0)
    return proc.stdout()
  }

  /** Waits until the service's own health check passes. */
  async healthy (name: string): Promise<void> {
    const check = service(name).healthcheck
    const [kind, node, ...args] = check?.test ?? []
    expect([kind, node]).toEqual(['CMD', 'node'])
    await waitFor(async () => {
      try {
        await run(process.execPath, args.map(a => this.hosts(a, name)), { env: { ...process.env, ...this.env(name) }, timeout: durationMs(check?.timeout, 3000) })
        return true
      } catch {
        return false
      }
    }, { timeoutMs: durationMs(check?.start_period, 30_000), intervalMs: 100, what: `the health check of ${name}` })
  }

  /** Stops a long-running service as `docker compose down` does: SIGTERM, then it has stop_grace_period. */
  async stop (name: string, proc: SpawnedProcess): Promise<number | string> {
    proc.child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<string>(resolve => { timer = setTimeout(() => { resolve('still running after stop_grace_period') }, durationMs(service(name).stop_grace_period, 10_000)) })
    try {
      return await Promise.race([proc.exited, grace])
    } finally {
      clearTimeout(timer)
    }
  }
}

interface StatusJson {
  state: string
  regions: Array<{ name: string, controlPlane: { endpoint: string, pid: number | null } | null, clusters: Array<{ name: string, state: string, cloneOf: string | null, hsms: Array<{ state: string, endpoint: string, directEndpoint: string, name: string, pid: number | null }> }> }>
  cmuConfigs: Record<string, string>
}

describe('docker-compose.yml services as local processes (no Docker engine)', () => {
  it('brings up the default lab, serves the shells, stops on SIGTERM and comes back on its volumes', async () => {
    const topology = await readTopology(DEFAULT_TOPOLOGY_PATH)
    const dir = tmpDir('hsmlab-compose-')
    onTestFinished(() => {
      for (const pid of processesIn(dir)) {
        try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
      }
    })
    const local = new LocalCompose(dir)
    const servers = Object.entries(services).filter(([, s]) => s.profiles === undefined && s.healthcheck !== undefined).map(([name]) => name)
    const labArgv = argvOf(service('lab'))
    const entry = [...(service('lab').entrypoint ?? [])]
    const labDir = argAfter(labArgv, '--dir')

    // As Compose starts them: each once what it depends on is healthy (the HSM hosts before their control planes).
    const up = async (): Promise<Map<string, SpawnedProcess>> => {
      await local.oneShot('manufacturer-key')
      await local.oneShot('peer-secret')
      const running = new Map<string, SpawnedProcess>()
      while (running.size < servers.length) {
        const ready = servers.filter(name => !running.has(name) &&
          Object.keys(service(name).depends_on ?? {}).every(d => !servers.includes(d) || running.has(d)))
        expect(ready, 'services whose dependencies are up').not.toEqual([])
        for (const name of ready) running.set(name, local.start(name))
        await Promise.all(ready.map(async name => { await local.healthy(name) }))
      }
      return running
    }
    // As `docker compose down` stops them: dependents first.
    const down = async (running: Map<string, SpawnedProcess>): Promise<void> => {
      for (const [name, proc] of [...running].reverse()) expect(await local.stop(name, proc), name).toBe(0)
    }
    const status = async (): Promise<StatusJson> => JSON.parse(await local.oneShot('lab', [...entry, 'status', '--dir', labDir, '--json'])) as StatusJson

    let running = await up()
    const firstUp = await local.oneShot('lab')
    expect(firstUp).toContain('hsmlab: lab ready in')
    expect(firstUp).toContain(`created ${topology.regions.flatMap(r => r.clusters.map(c => `${r.name}/${c.name}`)).join(', ')}`)
    expect(readdirSync(join(dir, 'volumes', mountsOf(service('manufacturer-key'))[0]?.volume ?? ''))).toEqual(['manufacturer.key'])
    const peerSecret = join(dir, 'volumes', mountsOf(service('peer-secret'))[0]?.volume ?? '', 'peer.secret')
    expect(statSync(peerSecret).mode & 0o777).toBe(0o600)

    const checkStatus = async (): Promise<StatusJson> => {
      const report = await status()
      expect(report.state).toBe('RUNNING')
      for (const region of topology.regions) {
        const seen = report.regions.find(r => r.name === region.name)
        const cp = `cp-${region.name}`
        expect(seen?.controlPlane?.endpoint).toBe(`http://${local.address(cp)}:${argAfter(argvOf(service(cp)), '--port')}`)
        expect(seen?.controlPlane?.pid).toEqual(expect.any(Number))
        for (const cluster of region.clusters) {
          const c = seen?.clusters.find(x => x.name === cluster.name)
          expect(c?.state).toBe('ACTIVE')
          expect(c?.cloneOf).toBe(cluster.cloneOf === undefined ? null : `${cluster.cloneOf.region}/${cluster.cloneOf.cluster}`)
          expect(c?.hsms).toHaveLength(cluster.hsms)
          // Every HSM at the fixed address of an HSM host of its region (here: that container's stand-in),
          // a child of that host's process, not of its control plane.
          const hosts = hostsOf(region.name).map(h => new URL(h.url).hostname)
          for (const h of c?.hsms ?? []) {
            expect(h.state).toBe('ACTIVE')
            const host = hosts.find(name => local.address(name) === h.name)
            expect(host, `the HSM host at ${h.name}`).toBeDefined()
            // Clients reach it through its client link in the fault proxy.
            expect(h.directEndpoint).toMatch(new RegExp(`^ws://${h.name.replaceAll('.', '\\.')}:\\d+$`))
            expect(h.endpoint).toMatch(new RegExp(`^ws://${local.address('fault-proxy').replaceAll('.', '\\.')}:\\d+$`))
            expect(parentOf(h.pid ?? 0), `the parent of HSM ${h.name}`).toBe(running.get(host ?? '')?.child.pid)
          }
          expect(new Set(c?.hsms.map(h => h.name)).size).toBe(cluster.hsms)
        }
      }
      return report
    }
    const report = await checkStatus()

    // The shells, as `docker compose run cmu|kmu` runs them, with a session piped in.
    const source = topology.regions[0]?.clusters[0]
    const admin = `loginHSM CO ${DEFAULT_ADMIN_NAME} ${source?.activate?.admin ?? ''}`
    const cu = source?.users.find(u => u.type === 'CU')
    const checkShells = async (): Promise<void> => {
      const cmu = await local.oneShot('cmu', undefined, `${admin}\nlistUsers\nquit\n`)
      for (let server = 0; server < (source?.hsms ?? 0); server++) expect(cmu).toContain(`loginHSM success on server ${server}(`)
      expect(cmu).toContain(cu?.name)
      // Across the regions: one HSM of the source, one of its clone.
      const [cross] = Object.values(report.cmuConfigs)
      const crossed = await local.oneShot('cmu', [...(service('cmu').entrypoint ?? []), `${labDir}/${basename(cross ?? '')}`], `${admin}\nlistUsers\nquit\n`)
      expect(crossed).toContain('loginHSM success on server 0(')
      expect(crossed).toContain('loginHSM success on server 1(')
      expect(crossed.match(new RegExp(`CU\\s+${cu?.name ?? ''}\\b`, 'g'))).toHaveLength(2)
      const kmu = await local.oneShot('kmu', undefined, `loginHSM -u CU -s ${cu?.name ?? ''} -p ${cu?.password ?? ''}\nexit\n`)
      expect(kmu).toContain('Cfm3LoginHSM returned: 0x00 : HSM Return: SUCCESS')
    }
    await checkShells()

    // The WAN goes through the fault proxy: partitioned, a copy across the regions fails; healed, it goes through.
    const [east, west] = topology.regions
    const backupId = (await local.oneShot('lab', [...entry, 'backup', '--dir', labDir, `${east?.name ?? ''}/${east?.clusters[0]?.name ?? ''}`])).trim()
    const eastApi = new ControlPlaneClient({ endpoint: report.regions[0]?.controlPlane?.endpoint ?? '', region: east?.name ?? '' })
    const proxyApi = `http://${local.address('fault-proxy')}:${argAfter(argvOf(service('fault-proxy')), '--port')}`
    const post = async (path: string, body: object): Promise<void> => {
      expect((await fetch(`${proxyApi}${path}`, { method: 'POST', body: JSON.stringify(body) })).status).toBe(200)
    }
    await post('/hsmlab/partition', { group: 'wan' })
    await expect(eastApi.copyBackupToRegion({ BackupId: backupId, DestinationRegion: west?.name ?? '' })).rejects
      .toMatchObject({ awsType: 'CloudHsmInternalFailureException', message: expect.stringContaining(`Region ${west?.name ?? ''} cannot be reached`) })
    await post('/hsmlab/heal', {})
    const copied = await eastApi.copyBackupToRegion({ BackupId: backupId, DestinationRegion: west?.name ?? '' })
    expect(copied.DestinationBackup?.SourceBackup).toBe(backupId)

    // `docker compose down`: SIGTERM to every server; an HSM host stops its HSM and exits 0.
    await down(running)
    expect(processesIn(dir)).toEqual([])

    // `docker compose up` again: the same volumes, the same clusters; `up` finds nothing to do.
    running = await up()
    const again = await local.oneShot('lab')
    expect(again).toContain('nothing to start')
    await checkStatus()
    await checkShells()
    await down(running)
    expect(existsSync(join(dir, 'volumes', 'lab', 'lab.json'))).toBe(true)
  })
})
