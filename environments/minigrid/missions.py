"""Missions as token ids of a fixed vocabulary, with slots filled inside ``jit``.

The official environments give the mission as a string; here it is a ``[MISSION_LENGTH]``
int32 array of word ids (0 pads). :func:`tokenize`/:func:`detokenize` convert between the
two; :func:`fill` builds a mission whose colour or object words are traced values (the
generators choose them at random).
"""
from __future__ import annotations

import re

import chex
import jax.numpy as jnp
import numpy as np

from environments.minigrid import core

Array = chex.Array

VOCABULARY = ("<pad>", "get", "to", "the", "green", "goal", "square", "use", "key", "open", "door", "and", "then",
              "red", "blue", "purple", "yellow", "grey", "avoid", "lava", "reach", "ball", "box", "go", "pick",
              "up", "a", "an", "put", "near", "object", "traverse", "rooms", "unlock", "find",
              # Appended for the other families (earlier ids never change).
              "opening", "matching", "at", "end", "of", "hallway", "fetch", "you", "must", "from", "room")
"""Mission words; token 0 pads. ``tokenize``/``detokenize`` map missions to ``[MISSION_LENGTH]`` ids."""
MISSION_LENGTH = 20  # the longest official mission (LockedRoom) has 17 words
WORD_TO_ID = {w: i for i, w in enumerate(VOCABULARY)}
COLOR_TOKENS = np.array([WORD_TO_ID[c] for c in core.COLOR_NAMES], np.int32)
"""``[6]`` the token of each colour index."""
OBJECT_TOKENS = np.array([WORD_TO_ID.get(name, 0) for name in core.OBJECT_TO_IDX], np.int32)
"""``[11]`` the token of each object index (door, key, ball, box, goal, lava; 0 for the others)."""


def tokenize(mission: str, length: int = MISSION_LENGTH) -> np.ndarray:
    """``[length]`` int32 token ids of a mission string (ValueError names an unknown word)."""
    words = re.findall(r"[a-z]+", mission.lower())
    unknown = [w for w in words if w not in WORD_TO_ID]
    if unknown or len(words) > length:
        raise ValueError(f"cannot tokenize mission {mission!r}: unknown words {unknown} or longer than {length}")
    return np.array([WORD_TO_ID[w] for w in words] + [0] * (length - len(words)), np.int32)


def detokenize(tokens) -> str:
    return " ".join(VOCABULARY[int(t)] for t in np.asarray(tokens) if int(t) != 0)


def fill(template: str, **slots) -> Array:
    """``[MISSION_LENGTH]`` int32 tokens of ``template`` with each ``{name}`` word replaced by ``slots[name]``.

    A slot is a traced token id (``[]`` int32), e.g. ``fill("go to the {color} door",
    color=COLOR_TOKENS[c])``; the other words are tokenized statically.
    """
    words = re.findall(r"\{[a-z_]+\}|[a-z]+", template.lower())
    if len(words) > MISSION_LENGTH:
        raise ValueError(f"mission template {template!r} longer than {MISSION_LENGTH} words")
    ids = [jnp.asarray(slots[w[1:-1]], jnp.int32) if w.startswith("{") else jnp.asarray(WORD_TO_ID[w], jnp.int32)
           for w in words]
    return jnp.stack(ids + [jnp.zeros((), jnp.int32)] * (MISSION_LENGTH - len(words)))


def color_token(color: Array) -> Array:
    return jnp.asarray(COLOR_TOKENS)[color]


def object_token(kind: Array) -> Array:
    return jnp.asarray(OBJECT_TOKENS)[kind]
