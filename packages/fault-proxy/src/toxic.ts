/**
 * Toxics as the API sees them: the registry of types and their attributes, parsing of the create
 * and update bodies with Toxiproxy's defaults and errors (toxic_collection.go), and their JSON
 * (`{attributes, name, type, stream, toxicity}`, in Go's field order).
 */
import { ApiError, asObject, field, float32Json, floatField, intField, stringField } from './go-json.js'

/** The direction a toxic acts on: client → upstream, or upstream → client. */
export type Direction = 'upstream' | 'downstream'

/** The toxic types Toxiproxy registers (toxics/*.go), `noop` included. */
export type ToxicType = 'latency' | 'bandwidth' | 'slow_close' | 'timeout' | 'reset_peer' | 'slicer' | 'limit_data' | 'noop'

/**
 * Each toxic type's attributes by name (whole numbers), as a client sets them: the lab's fault
 * vocabulary builds its toxics against this, and TYPES below must list the same names, so the
 * compiler keeps the two in step.
 */
export interface ToxicAttributes {
  latency: { latency: number, jitter: number }
  bandwidth: { rate: number }
  slow_close: { delay: number }
  timeout: { timeout: number }
  reset_peer: { timeout: number }
  slicer: { average_size: number, size_variation: number, delay: number }
  limit_data: { bytes: number }
  noop: Record<string, never>
}

interface TypeSpec<T extends ToxicType> {
  /** Go struct name, for error messages. */
  struct: string
  /** Attribute names in Go's field order, with their Go type. */
  attributes: ReadonlyArray<readonly [keyof ToxicAttributes[T] & string, 'int' | 'int64']>
}

const TYPES: { readonly [T in ToxicType]: TypeSpec<T> } = {
  latency: { struct: 'LatencyToxic', attributes: [['latency', 'int64'], ['jitter', 'int64']] },
  bandwidth: { struct: 'BandwidthToxic', attributes: [['rate', 'int64']] },
  slow_close: { struct: 'SlowCloseToxic', attributes: [['delay', 'int64']] },
  timeout: { struct: 'TimeoutToxic', attributes: [['timeout', 'int64']] },
  reset_peer: { struct: 'ResetToxic', attributes: [['timeout', 'int64']] },
  slicer: { struct: 'SlicerToxic', attributes: [['average_size', 'int'], ['size_variation', 'int'], ['delay', 'int']] },
  limit_data: { struct: 'LimitDataToxic', attributes: [['bytes', 'int64']] },
  noop: { struct: 'NoopToxic', attributes: [] }
}

/** Every toxic type the API accepts. */
export const TOXIC_TYPES: readonly ToxicType[] = Object.keys(TYPES) as ToxicType[]

/** A toxic of a proxy. */
export interface Toxic {
  name: string
  type: ToxicType
  /** The stream as the client spelled it (Toxiproxy keeps the spelling). */
  stream: string
  direction: Direction
  /** Probability in [0, 1] that the toxic applies to a link, kept as a float32 like Go. */
  toxicity: number
  /** Attribute values by name, integers. */
  attributes: Record<string, number>
}

/** A toxic as the API prints it. */
export interface ToxicJson {
  attributes: Record<string, number>
  name: string
  type: string
  stream: string
  toxicity: number
}

export const ERR_INVALID_STREAM = (): ApiError => new ApiError('stream was invalid, can be either upstream or downstream', 400)
export const ERR_INVALID_TOXIC_TYPE = (): ApiError => new ApiError('invalid toxic type', 400)
export const ERR_TOXIC_EXISTS = (): ApiError => new ApiError('toxic already exists', 409)
export const ERR_TOXIC_NOT_FOUND = (): ApiError => new ApiError('toxic not found', 404)

function isToxicType (type: string): type is ToxicType {
  return Object.hasOwn(TYPES, type)
}

/** Go's `stream.ParseDirection`: case-insensitive `upstream` / `downstream`. */
export function parseDirection (stream: string): Direction | undefined {
  const lower = stream.toLowerCase()
  return lower === 'upstream' || lower === 'downstream' ? lower : undefined
}

function readAttributes (type: ToxicType, value: unknown, base: Record<string, number>): Record<string, number> {
  const spec = TYPES[type]
  const attributes = { ...base }
  if (value === undefined || value === null) return attributes
  const obj = asObject(value, `toxics.${spec.struct}`)
  for (const [name, goType] of spec.attributes) {
    const v = intField(obj, name, `${spec.struct}.attributes`, goType)
    if (v !== undefined) attributes[name] = v
  }
  return attributes
}

function zeroAttributes (type: ToxicType): Record<string, number> {
  const attributes: Record<string, number> = {}
  for (const [name] of TYPES[type].attributes) attributes[name] = 0
  return attributes
}

/**
 * A new toxic from a create body, with Toxiproxy's defaults (`stream` downstream, `toxicity` 1,
 * name `<type>_<stream>`) and its checks in its order: body, stream, type, then attributes.
 * The caller checks that the name is free (409) between the type and the attributes, as Go does;
 * `isTaken` lets it do so.
 */
export function parseNewToxic (body: unknown, isTaken: (name: string) => boolean): Toxic {
  const obj = asObject(body, 'toxics.ToxicWrapper')
  let name = stringField(obj, 'name', 'ToxicWrapper') ?? ''
  const type = stringField(obj, 'type', 'ToxicWrapper') ?? ''
  const stream = stringField(obj, 'stream', 'ToxicWrapper') ?? 'downstream'
  const toxicity = floatField(obj, 'toxicity', 'ToxicWrapper') ?? 1
  const direction = parseDirection(stream)
  if (direction === undefined) throw ERR_INVALID_STREAM()
  if (name === '') name = `${type}_${stream}`
  if (!isToxicType(type)) throw ERR_INVALID_TOXIC_TYPE()
  if (isTaken(name)) throw ERR_TOXIC_EXISTS()
  const attributes = readAttributes(type, field(obj, 'attributes'), zeroAttributes(type))
  return { name, type, stream, direction, toxicity: Math.fround(toxicity), attributes }
}

/** The toxic after an update body: `attributes` merged over the current ones, `toxicity` kept unless given. */
export function parseToxicUpdate (toxic: Toxic, body: unknown): Toxic {
  const obj = asObject(body, 'struct { Attributes interface {} "json:\\"attributes\\""; Toxicity float32 "json:\\"toxicity\\"" }')
  const toxicity = floatField(obj, 'toxicity', 'Toxicity')
  const attributes = readAttributes(toxic.type, field(obj, 'attributes'), toxic.attributes)
  return { ...toxic, attributes, toxicity: toxicity === undefined ? toxic.toxicity : Math.fround(toxicity) }
}

/** A toxic's JSON, in Go's field order. */
export function toxicJson (toxic: Toxic): ToxicJson {
  const attributes: Record<string, number> = {}
  for (const [name] of TYPES[toxic.type].attributes) attributes[name] = toxic.attributes[name] ?? 0
  return { attributes, name: toxic.name, type: toxic.type, stream: toxic.stream, toxicity: float32Json(toxic.toxicity) }
}

/** Attribute value, 0 when unset. */
export function attr (toxic: Toxic, name: string): number {
  return toxic.attributes[name] ?? 0
}
