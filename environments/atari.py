"""Atari evaluation protocols as envpool ``make`` keyword arguments.

Two protocols dominate the deep-RL Atari literature; ``environments.make(env_id,
protocol=...)`` applies one of them and any keyword override still wins.

=============================  ==============  ==============  =========================
envpool knob                   ``atari100k``   ``atari200m``   envpool default
=============================  ==============  ==============  =========================
``repeat_action_probability``  0.0             0.25            0.0
``full_action_space``          False           False           False
``episodic_life``              True (train)    False           False
``noop_max``                   30              1 (see Notes)   30
``use_fire_reset``             False           False           True
``frame_skip``                 4               4               4
``stack_num``                  4               4               4
``img_height`` x ``img_width`` 84 x 84         84 x 84         84 x 84
``gray_scale``                 True            True            True
``max_episode_steps``          27000           27000           27000
``reward_clip``                False           False           False
``zero_discount_on_life_loss`` False           False           False
=============================  ==============  ==============  =========================

``evaluation=True`` turns ``episodic_life`` off (a life loss is not an episode end
when scoring); everything else is unchanged.

* ``repeat_action_probability``: sticky actions (Machado et al. 2018, arXiv:1709.06009):
  with this probability the emulator repeats the previous action instead of the new one.
  Atari 100k (Kaiser et al. 2019, arXiv:1903.00374; DER arXiv:1906.05243; SPR
  arXiv:2007.05929; BBF arXiv:2305.19452) uses none; Dopamine's JAX agents
  (``create_atari_environment.sticky_actions = True``) use 0.25.
* ``full_action_space``: 18 actions instead of the game's minimal set. Machado et al.
  recommend the full set, but Dopamine (``gym.make('<Game>NoFrameskip-v0')``) and the
  100k papers use the minimal set, as do we.
* ``episodic_life``: a lost life ends the *training* episode (LAST, discount 0) but the
  game continues; the next FIRST is not a new game. Atari 100k trains this way
  (``AtariPreprocessing.terminal_on_life_loss = True`` in BBF, ``episodic_lives`` in SPR);
  Dopamine's default and every evaluation keep it off.
* ``noop_max``: on a real reset envpool takes ``U{1, noop_max}`` no-op frames (``noop_max=30``
  is the "30 no-op starts" of Mnih et al. 2015 used by DER/SPR/BBF). Dopamine takes none.
* ``use_fire_reset``: press FIRE after reset in games that need it. Neither Dopamine nor
  the 100k code bases do, so the agent must learn to fire.
* ``frame_skip``: each agent step repeats the action for 4 emulator frames and max-pools
  the last two frames (Dopamine ``AtariPreprocessing``, envpool and SPR all pool).
* ``stack_num``: the observation is the last 4 pooled 84x84 grayscale frames,
  ``uint8 [4, 84, 84]``, oldest first.
* ``max_episode_steps``: 27000 agent steps = 108000 frames = 30 minutes of play
  (``Runner.max_steps_per_episode = 27_000`` in Dopamine and BBF). Reaching it is a
  truncation: ``environments`` reports discount 1.
* ``reward_clip``: off in the environment; agents clip rewards themselves so that the raw
  game score stays available for reporting.

Notes:
  * envpool's ``noop_max=0`` makes ``uniform_int_distribution(0, -1)`` and segfaults on
    reset, so "no no-op starts" is ``noop_max=1``: exactly one no-op frame after every reset
    (a deterministic 1-frame offset, not a random start). ``make`` rejects ``noop_max < 1``.
  * At a real reset envpool fills the frame stack with copies of the first frame;
    Dopamine's replay and SPR pad the stack with zeros instead. On a life loss with
    ``episodic_life`` the stack is *not* refilled (the game goes on).
  * With ``episodic_life`` envpool also takes ``U{1, noop_max}`` no-op frames after each
    lost life (SPR takes one).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

__all__ = ["AtariProtocol", "ATARI_PROTOCOLS", "atari_protocol"]


@dataclasses.dataclass(frozen=True)
class AtariProtocol:
    """One Atari preprocessing and episode protocol, as envpool ``make`` kwargs."""

    name: str
    """Protocol name (``"atari100k"``, ``"atari200m"``, with ``"-eval"`` for evaluation)."""
    repeat_action_probability: float
    """Sticky-action probability (0.25 in Machado et al. 2018, 0 in Atari 100k)."""
    full_action_space: bool
    """Use all 18 actions instead of the game's minimal action set."""
    episodic_life: bool
    """A lost life ends the episode (LAST, discount 0) without resetting the game."""
    noop_max: int
    """Upper bound of the ``U{1, noop_max}`` no-op frames taken on reset (>= 1)."""
    use_fire_reset: bool
    """Press FIRE after reset in games whose minimal action set contains it."""
    frame_skip: int = 4
    """Emulator frames per agent step (the last two are max-pooled)."""
    stack_num: int = 4
    """Frames stacked in one observation."""
    img_height: int = 84
    """Observation height in pixels."""
    img_width: int = 84
    """Observation width in pixels."""
    gray_scale: bool = True
    """Grayscale frames (1 channel per stacked frame) instead of RGB."""
    max_episode_steps: int = 27_000
    """Agent steps before truncation (27000 agent steps = 108000 frames = 30 minutes)."""
    reward_clip: bool = False
    """Clip rewards to their sign inside the environment (agents clip instead)."""
    zero_discount_on_life_loss: bool = False
    """Discount 0 on a life loss without ending the episode (unused by both protocols)."""

    def evaluation(self) -> AtariProtocol:
        """The evaluation variant: identical except ``episodic_life=False``."""
        if self.name.endswith("-eval"):
            return self
        return dataclasses.replace(self, name=f"{self.name}-eval", episodic_life=False)

    def envpool_kwargs(self) -> Dict[str, Any]:
        """The protocol as keyword arguments of ``envpool.make`` (all but ``name``)."""
        kwargs = dataclasses.asdict(self)
        del kwargs["name"]
        return kwargs


ATARI_PROTOCOLS: Dict[str, AtariProtocol] = {
    "atari100k": AtariProtocol(
        name="atari100k",
        repeat_action_probability=0.0,
        full_action_space=False,
        episodic_life=True,
        noop_max=30,
        use_fire_reset=False,
    ),
    "atari200m": AtariProtocol(
        name="atari200m",
        repeat_action_probability=0.25,
        full_action_space=False,
        episodic_life=False,
        noop_max=1,
        use_fire_reset=False,
    ),
}


def atari_protocol(name: str, *, evaluation: bool = False) -> AtariProtocol:
    """Looks up a protocol by name; ``evaluation=True`` gives its evaluation variant.

    Raises:
      ValueError: ``name`` is not one of :data:`ATARI_PROTOCOLS`.
    """
    try:
        protocol = ATARI_PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"Unknown Atari protocol {name!r}; valid protocols: {sorted(ATARI_PROTOCOLS)}"
        ) from None
    return protocol.evaluation() if evaluation else protocol
