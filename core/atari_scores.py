"""Random and human reference scores of the 57 Atari games, for human-normalised scores.

The table every Atari-57 paper of the DQN lineage normalises by: random-agent and
professional-human-tester scores (undiscounted episode returns, episodes capped at
108,000 frames, up to 30 no-op starts) from Mnih et al. 2015 "Human-level control
through deep reinforcement learning" (Nature 518) and Wang et al. 2016 "Dueling
Network Architectures for Deep Reinforcement Learning" (arXiv 1511.06581), which
added the games and human scores missing from the Nature table. DQN Zoo
(``dqn_zoo/atari_data.py``) ships exactly these numbers, and Rainbow (arXiv 1710.02298)
and Agent57 (arXiv 2003.13350, appendix score table) normalise by them.

The one known disagreement between sources is Video Pinball's random score: 16256.9
in Wang et al./DQN Zoo (kept here) and 0.0 in Agent57's table and Google Research's
``reincarnating_rl/atari_scores.py``. With 16256.9 the human-random gap is only 1411.0
points, so Video Pinball human-normalised scores are large; results quoted against the
other table differ on that game only (not an Atari 100k game).

Every game has ``human > random``, including those with negative scores (Double Dunk,
Fishing Derby, Ice Hockey, Skiing, Tennis), so the normalisation never divides by zero
or flips sign.

Keys are envpool task names without the version suffix (``"Pong"``, ``"MsPacman"``,
``"KungFuMaster"``, ``"Jamesbond"``, ``"UpNDown"``, ``"Hero"``): ``game_key`` maps an
environment id such as ``"Pong-v5"``, ``"ALE/Pong-v5"`` or ``"PongNoFrameskip-v4"`` to
its key. ``atari100k`` flags the 26 games of the Atari 100k benchmark (Kaiser et al.
2019, "Model-Based Reinforcement Learning for Atari", arXiv 1903.00374).
"""
from __future__ import annotations

import difflib
import re
import types
from typing import Mapping, NamedTuple, Tuple


class GameScores(NamedTuple):
    """Reference scores of one Atari game."""

    random: float  # mean return of a uniformly random policy
    human: float  # mean return of a professional human games tester
    atari100k: bool  # whether the game is one of the 26 Atari 100k games


# (random, human, atari100k), as in Wang et al. 2016 and DQN Zoo.
_TABLE = {
    "Alien": (227.8, 7127.7, True),
    "Amidar": (5.8, 1719.5, True),
    "Assault": (222.4, 742.0, True),
    "Asterix": (210.0, 8503.3, True),
    "Asteroids": (719.1, 47388.7, False),
    "Atlantis": (12850.0, 29028.1, False),
    "BankHeist": (14.2, 753.1, True),
    "BattleZone": (2360.0, 37187.5, True),
    "BeamRider": (363.9, 16926.5, False),
    "Berzerk": (123.7, 2630.4, False),
    "Bowling": (23.1, 160.7, False),
    "Boxing": (0.1, 12.1, True),
    "Breakout": (1.7, 30.5, True),
    "Centipede": (2090.9, 12017.0, False),
    "ChopperCommand": (811.0, 7387.8, True),
    "CrazyClimber": (10780.5, 35829.4, True),
    "Defender": (2874.5, 18688.9, False),
    "DemonAttack": (152.1, 1971.0, True),
    "DoubleDunk": (-18.6, -16.4, False),
    "Enduro": (0.0, 860.5, False),
    "FishingDerby": (-91.7, -38.7, False),
    "Freeway": (0.0, 29.6, True),
    "Frostbite": (65.2, 4334.7, True),
    "Gopher": (257.6, 2412.5, True),
    "Gravitar": (173.0, 3351.4, False),
    "Hero": (1027.0, 30826.4, True),
    "IceHockey": (-11.2, 0.9, False),
    "Jamesbond": (29.0, 302.8, True),
    "Kangaroo": (52.0, 3035.0, True),
    "Krull": (1598.0, 2665.5, True),
    "KungFuMaster": (258.5, 22736.3, True),
    "MontezumaRevenge": (0.0, 4753.3, False),
    "MsPacman": (307.3, 6951.6, True),
    "NameThisGame": (2292.3, 8049.0, False),
    "Phoenix": (761.4, 7242.6, False),
    "Pitfall": (-229.4, 6463.7, False),
    "Pong": (-20.7, 14.6, True),
    "PrivateEye": (24.9, 69571.3, True),
    "Qbert": (163.9, 13455.0, True),
    "Riverraid": (1338.5, 17118.0, False),
    "RoadRunner": (11.5, 7845.0, True),
    "Robotank": (2.2, 11.9, False),
    "Seaquest": (68.4, 42054.7, True),
    "Skiing": (-17098.1, -4336.9, False),
    "Solaris": (1236.3, 12326.7, False),
    "SpaceInvaders": (148.0, 1668.7, False),
    "StarGunner": (664.0, 10250.0, False),
    "Surround": (-10.0, 6.5, False),
    "Tennis": (-23.8, -8.3, False),
    "TimePilot": (3568.0, 5229.2, False),
    "Tutankham": (11.4, 167.6, False),
    "UpNDown": (533.4, 11693.2, True),
    "Venture": (0.0, 1187.5, False),
    "VideoPinball": (16256.9, 17667.9, False),  # Agent57's table: random 0.0
    "WizardOfWor": (563.5, 4756.5, False),
    "YarsRevenge": (3092.9, 54576.9, False),
    "Zaxxon": (32.5, 9173.3, False),
}

ATARI_SCORES: Mapping[str, GameScores] = types.MappingProxyType(
    {game: GameScores(*row) for game, row in _TABLE.items()}
)
"""Game key -> :class:`GameScores` for all 57 games (read-only)."""

ATARI_57_GAMES: Tuple[str, ...] = tuple(sorted(ATARI_SCORES))
"""The 57 game keys, sorted."""

ATARI_100K_GAMES: Tuple[str, ...] = tuple(g for g in ATARI_57_GAMES if ATARI_SCORES[g].atari100k)
"""The 26 Atari 100k game keys, sorted."""

_BY_FOLDED_NAME = {game.lower(): game for game in ATARI_SCORES}
_VERSION_SUFFIX = re.compile(r"-v\d+$")
_MODE_SUFFIX = re.compile(r"(NoFrameskip|Deterministic)$")


def _fold(name: str) -> str:
    """Lower-case a game name and drop separators: ``"ms_pacman"`` -> ``"mspacman"``."""
    return re.sub(r"[\s_\-']", "", name).lower()


def game_key(env_id: str) -> str:
    """The table key of an Atari environment id.

    Accepts envpool ids (``"Pong-v5"``), Gymnasium ids (``"ALE/Pong-v5"``), legacy Gym ids
    (``"PongNoFrameskip-v4"``, ``"PongDeterministic-v4"``) and bare names in any case or
    snake case (``"pong"``, ``"ms_pacman"``, ``"up_n_down"``).

    Args:
      env_id: an environment id or game name.

    Returns:
      The game's key in :data:`ATARI_SCORES`, e.g. ``"MsPacman"``.

    Raises:
      ValueError: for a game outside the 57, naming the closest valid games.
    """
    name = env_id.strip()
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    name = _MODE_SUFFIX.sub("", _VERSION_SUFFIX.sub("", name))
    folded = _fold(name)
    if folded in _BY_FOLDED_NAME:
        return _BY_FOLDED_NAME[folded]
    close = difflib.get_close_matches(folded, list(_BY_FOLDED_NAME), n=3, cutoff=0.6)
    hint = (
        "closest: " + ", ".join(_BY_FOLDED_NAME[c] for c in close)
        if close
        else "valid games: " + ", ".join(ATARI_57_GAMES)
    )
    raise ValueError(f"unknown Atari game {env_id!r} (parsed as {name!r}); {hint}")


def game_scores(env_id: str) -> GameScores:
    """The :class:`GameScores` of an environment id or game name (see :func:`game_key`)."""
    return ATARI_SCORES[game_key(env_id)]
