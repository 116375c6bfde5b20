// js-tier-router: a Switchyard routing policy in JavaScript.
//
// The client's `model` names a tier, or a catalog model, or asks the policy to choose:
//   fast, cheap      -> the cheapest healthy model tagged `cheap`
//   smart, reasoning -> the cheapest healthy model tagged `reasoning`
//   auto (or none)   -> `reasoning` when the request declares tools or its prompt is above
//                       LONG_PROMPT_TOKENS estimated tokens, else `cheap`
//   a catalog id     -> that model, when it is healthy and the request fits its context window
// Every route is the chosen model then the next-cheapest healthy model of the same tier. Any
// other name is refused with 400. Built with componentize-js; see README.md.

import { log } from 'switchyard:policy/host@0.1.2';

/** An `auto` prompt above this many estimated tokens needs a reasoning model. */
const LONG_PROMPT_TOKENS = 2000;
/** Targets in a route: the choice and one fallback. */
const MAX_CHAIN = 2;
const ALIASES = {
  fast: 'cheap',
  cheap: 'cheap',
  smart: 'reasoning',
  reasoning: 'reasoning',
};

/** Price of a typical request, output tokens weighted three times (as the Rust SDK ranks). */
const blendedCost = (m) => m.inputCostPerMtok + 3 * m.outputCostPerMtok;

/** The prompt and the client's output cap fit in the model's context window. */
const fits = (m, req) => req.estimatedInputTokens + (req.maxOutputTokens ?? 0) <= m.contextWindow;

/** Healthy models tagged `tier` that `req` fits, cheapest first (ties keep catalog order). */
function ranked(catalog, tier, req) {
  return catalog
    .filter((m) => m.health.healthy && m.tags.includes(tier) && fits(m, req))
    .sort((a, b) => blendedCost(a) - blendedCost(b));
}

/** The tier of a catalog model: `reasoning` if it is tagged so, else `cheap`. */
const tierOf = (m) => (m.tags.includes('reasoning') ? 'reasoning' : 'cheap');

function route(models, reason) {
  const targets = models
    .slice(0, MAX_CHAIN)
    .map((m) => ({ model: m.id, timeoutMs: undefined, maxOutputTokens: undefined }));
  return { tag: 'route', val: { targets, reason } };
}

function reject(status, message) {
  return { tag: 'reject', val: { status, message } };
}

/** Why no model of `tier` can serve `req`: 503 if only health stands in the way, else 400. */
function nothingFits(catalog, tier, req) {
  const ofTier = catalog.filter((m) => m.tags.includes(tier));
  if (ofTier.length === 0) {
    return reject(400, `no model available to you is tagged '${tier}'`);
  }
  if (ofTier.some((m) => fits(m, req))) {
    return reject(503, `every '${tier}' model that could serve this request is unhealthy; try again later`);
  }
  const needed = req.estimatedInputTokens + (req.maxOutputTokens ?? 0);
  return reject(400, `the request (~${needed} tokens with its output cap) is larger than every '${tier}' model's context window`);
}

/** The route to the cheapest models of `tier`, or the rejection saying why there is none. */
function toTier(catalog, tier, req, why) {
  const chain = ranked(catalog, tier, req);
  return chain.length > 0 ? route(chain, `${tier}: ${why}`) : nothingFits(catalog, tier, req);
}

export function decide(req, catalog) {
  const asked = (req.requestedModel ?? '').trim();
  const alias = asked.toLowerCase();

  if (alias === '' || alias === 'auto') {
    if (req.hasTools) {
      return toTier(catalog, 'reasoning', req, 'auto, the request declares tools');
    }
    const tokens = req.estimatedInputTokens;
    if (tokens > LONG_PROMPT_TOKENS) {
      return toTier(catalog, 'reasoning', req, `auto, long prompt (~${tokens} tokens)`);
    }
    return toTier(catalog, 'cheap', req, `auto, short prompt (~${tokens} tokens)`);
  }

  if (Object.hasOwn(ALIASES, alias)) {
    return toTier(catalog, ALIASES[alias], req, `alias '${alias}'`);
  }

  const named = catalog.find((m) => m.id === asked);
  if (named) {
    const tier = tierOf(named);
    if (named.health.healthy && fits(named, req)) {
      const rest = ranked(catalog, tier, req).filter((m) => m.id !== named.id);
      return route([named, ...rest], `requested model ${named.id}`);
    }
    const state = named.health.healthy ? 'too small for this request' : 'unhealthy';
    log('warn', `requested model ${named.id} is ${state}; routing to its tier '${tier}'`);
    return toTier(catalog, tier, req, `requested model ${named.id} is ${state}`);
  }

  const known = ['auto', ...Object.keys(ALIASES), ...catalog.map((m) => m.id)].join(', ');
  // The host takes at most 1024 bytes of message; a large catalog's list is cut.
  const shown = known.length > 800 ? `${known.slice(0, 800)}, ...` : known;
  return reject(400, `unknown model '${asked.slice(0, 64)}': use one of ${shown}`);
}
