/**
 * Tag operations on clusters and backups: TagResource, UntagResource, ListTags (reference F.5).
 * A tag whose key a resource has already is replaced; removing a key it lacks is no error.
 */
import { ApiError, invalidRequest, notFound } from '../errors.js'
import type { ControlPlaneState, Tag } from '../state-store.js'
import { checkTags, page, readToken } from './common.js'
import type { ApiRequest } from '../api-types.js'
import type { ApiContext } from './context.js'

function resourceOf (state: ControlPlaneState, resourceId: string): { tags: Tag[], state: string } {
  const resource = resourceId.startsWith('cluster-') ? state.clusters[resourceId] : state.backups[resourceId]
  if (resource === undefined) throw notFound(`Resource ${resourceId} not found`)
  return resource
}

export async function tagResource (ctx: ApiContext, req: ApiRequest<'TagResource'>): Promise<unknown> {
  const tags = checkTags(req.TagList)
  await ctx.store.transact(draft => {
    const resource = resourceOf(draft, req.ResourceId)
    if (resource.state === 'DELETED') throw invalidRequest(`Resource ${req.ResourceId} is in state DELETED and cannot be tagged`)
    const merged = new Map(resource.tags.map(t => [t.Key, t.Value]))
    for (const tag of tags) merged.set(tag.Key, tag.Value)
    if (merged.size > ctx.settings.tagsPerResourceMax) {
      throw new ApiError('CloudHsmResourceLimitExceededException', `Resource ${req.ResourceId} would have ${merged.size} tags; a resource can have at most ${ctx.settings.tagsPerResourceMax}`)
    }
    resource.tags = [...merged].map(([Key, Value]) => ({ Key, Value }))
  })
  return {}
}

export async function untagResource (ctx: ApiContext, req: ApiRequest<'UntagResource'>): Promise<unknown> {
  await ctx.store.transact(draft => {
    const resource = resourceOf(draft, req.ResourceId)
    if (resource.state === 'DELETED') throw invalidRequest(`Resource ${req.ResourceId} is in state DELETED and cannot be untagged`)
    resource.tags = resource.tags.filter(t => !req.TagKeyList.includes(t.Key))
  })
  return {}
}

export async function listTags (ctx: ApiContext, req: ApiRequest<'ListTags'>): Promise<unknown> {
  const offset = readToken(req.NextToken, `tags:${req.ResourceId}`)
  const resource = resourceOf(ctx.store.state, req.ResourceId)
  const result = page(resource.tags, offset, req.MaxResults, `tags:${req.ResourceId}`)
  return { TagList: result.items.map(t => ({ ...t })), ...(result.nextToken === undefined ? {} : { NextToken: result.nextToken }) }
}
