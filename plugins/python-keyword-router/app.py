"""python-keyword-router: a Switchyard routing policy in Python.

It reads the start of the last user message (at most MAX_SCAN_CHARS characters, through the
host's `message-text`) and routes by the first kind of cue it finds, in this order:

- code ("```", "def ", "fn ", "stack trace", "compile"): the cheapest healthy model tagged
  `code`, or, if none fits, the cheapest tagged `tools`;
- summarising ("summarise", "summarize", "tl;dr"): the cheapest healthy model tagged `cheap`;
- reasoning ("step by step", "prove", "plan"): the cheapest healthy model tagged `reasoning`;
- none of these: the cheapest healthy model tagged `cheap`.

A model fits when it is healthy and holds the estimated prompt plus the client's output cap. The
route is that model and the next-cheapest fitting model of the same tag; when no model of the
kind fits, the cheapest fitting models of any tag. The reason names the cue, and one log line
says which cue was found. Built with componentize-py; see README.md.
"""

import re
from typing import List, Optional, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Decision,
    Decision_Reject,
    Decision_Route,
    Model,
    Rejection,
    Request,
    Role,
    Route,
    Target,
)

MAX_SCAN_CHARS = 2000
"""How much of the last user message is read."""
MAX_CHAIN = 2
"""Targets in a route: the choice and one fallback."""


# Kinds of request, in the order they are looked for: the name, the tags to route by (the first
# with a model that fits wins) and the cues, as one pattern over the lower-cased text. Words match
# whole, with their common endings ("compiler", "planning"), so "prove" is not found in "improve"
# nor "plan" in "explanation". Compiled when the component is built.
KINDS = [
    (kind, tags, re.compile("|".join(cues)))
    for kind, tags, cues in [
        (
            "code",
            ("code", "tools"),
            ["```", r"\bdef ", r"\bfn ", r"\bstack ?traces?\b", r"\bcompil(?:e|es|ed|er|ers|ing)\b"],
        ),
        ("summary", ("cheap",), [r"\bsummari[sz](?:e|es|ed|ing)\b", r"\btl;dr\b"]),
        (
            "reasoning",
            ("reasoning",),
            [r"\bstep[- ]by[- ]step\b", r"\bprov(?:e|es|ing)\b", r"\bplan(?:s|ned|ning)?\b"],
        ),
    ]
]


def find_cue(text: str) -> Optional[Tuple[str, Tuple[str, ...], str]]:
    """The first kind with a cue in `text` (lower case): its name, its tags and the cue found."""
    for kind, tags, pattern in KINDS:
        found = pattern.search(text)
        if found:
            return kind, tags, found.group(0).strip()
    return None


def blended_cost(m: Model) -> float:
    """Price of a typical request, output tokens weighted three times (as the Rust SDK ranks)."""
    return m.input_cost_per_mtok + 3 * m.output_cost_per_mtok


def fits(m: Model, req: Request) -> bool:
    """The prompt and the client's output cap fit in the model's context window."""
    return req.estimated_input_tokens + (req.max_output_tokens or 0) <= m.context_window


def ranked(catalog: List[Model], req: Request, tag: Optional[str]) -> List[Model]:
    """Healthy models tagged `tag` (any, for None) that `req` fits, cheapest first."""
    keep = [
        m
        for m in catalog
        if m.health.healthy and fits(m, req) and (tag is None or tag in m.tags)
    ]
    return sorted(keep, key=blended_cost)


def last_user_text(req: Request) -> str:
    for index in range(len(req.messages) - 1, -1, -1):
        if req.messages[index].role == Role.USER:
            return host.message_text(index, MAX_SCAN_CHARS) or ""
    return ""


def route(models: List[Model], reason: str) -> Decision:
    targets = [Target(m.id, None, None) for m in models[:MAX_CHAIN]]
    return Decision_Route(Route(targets, reason))


def plan(req: Request, catalog: List[Model], text: str) -> Decision:
    found = find_cue(text.lower())
    if found is None:
        tags, why = ("cheap",), "no cue"
        host.log(host.LogLevel.INFO, "found no cue")
    else:
        kind, tags, cue = found
        why = f"{kind} cue '{cue}'"
        host.log(host.LogLevel.INFO, f"found the {kind} cue: {cue}")
    for tag in tags:
        chain = ranked(catalog, req, tag)
        if chain:
            return route(chain, f"{why} -> {tag}")
    chain = ranked(catalog, req, None)
    if chain:
        return route(chain, f"{why} -> no '{tags[-1]}' model fits, cheapest of any")
    if any(fits(m, req) for m in catalog):
        return Decision_Reject(
            Rejection(503, "every model that could serve this request is unhealthy; try again later")
        )
    return Decision_Reject(
        Rejection(
            400,
            f"the request (~{req.estimated_input_tokens} tokens) is larger than every "
            "available model's context window",
        )
    )


class WitWorld(wit_world.WitWorld):
    def decide(self, req: Request, catalog: List[Model]) -> Decision:
        try:
            return plan(req, catalog, last_user_text(req))
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")
