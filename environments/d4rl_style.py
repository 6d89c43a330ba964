"""D4RL-style MuJoCo datasets made here from envpool: writer, validating loader, generator, scores.

The D4RL files (Fu et al. 2020, arXiv 2004.07219) cannot be downloaded on this machine, so
the datasets are *made here* with the same recipe and stored in the D4RL HDF5 layout, one
file per dataset, loadable with plain ``h5py`` (``f["observations"][:]`` ...):

=====================  ===============  =========  ===========================================
key                    shape            dtype      meaning
=====================  ===============  =========  ===========================================
``observations``       [N, D]           float32    s_t
``actions``            [N, A]           float32    a_t ∈ [−1, 1]^A
``rewards``            [N]              float32    r_{t+1}
``next_observations``  [N, D]           float32    s_{t+1} (the true last state at episode ends)
``next_actions``       [N, A]           float32    a_{t+1}: the behaviour policy's action at s_{t+1}
``terminals``          [N]              bool       s_{t+1} is terminal (bootstrap weight 0)
``timeouts``           [N]              bool       the episode was cut at s_{t+1} (time limit; bootstrap)
=====================  ===============  =========  ===========================================

``next_actions`` is not in D4RL; it is what a SARSA-style estimate of the behaviour
policy's Q needs. It is the action the behaviour policy drew at s_{t+1}, also on the last
transition of an episode (the collector draws an action at the last observation, which
envpool's auto-reset then ignores), so a timeout's SARSA target r + γ Q(s', a') is
defined. File attributes: ``env_id``, ``kind``, ``gamma``-free metadata (policy, episode
returns, seed, ``format_version``).

Kinds (the D4RL recipe): ``random`` (uniform actions), ``medium`` (a policy trained online
to part of expert return, with its exploration noise), ``medium-replay`` (that agent's
replay buffer up to then; written by ``algorithms/td3/train.py``), ``expert`` (a
better policy), ``medium-expert`` (medium + expert concatenated).

    python -m environments.d4rl_style generate --env-id Hopper-v4 --kind random --transitions 100000 --out data/hopper-random-v4.hdf5
    python -m environments.d4rl_style generate --env-id Hopper-v4 --kind medium --policy runs/td3_hopper/policy.npz \\
        --transitions 100000 --out data/hopper-medium-v4.hdf5
    python -m environments.d4rl_style combine data/hopper-medium-v4.hdf5 data/hopper-expert-v4.hdf5 --out data/hopper-medium-expert-v4.hdf5
    python -m environments.d4rl_style info data/hopper-medium-v4.hdf5

Normalised score (D4RL): 100 · (return − random) / (expert − random) with D4RL's public
reference returns (:data:`REF_MIN_SCORE`, :data:`REF_MAX_SCORE`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

FORMAT_VERSION = 1
KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")
FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations", "next_actions")
BOOL_KEYS = ("terminals", "timeouts")
KEYS = FLOAT_KEYS + BOOL_KEYS

# D4RL's reference returns (d4rl/infos.py), by environment: random policy and expert policy.
REF_MIN_SCORE = {"hopper": -20.272305, "halfcheetah": -280.178953, "walker2d": 1.629008}
REF_MAX_SCORE = {"hopper": 3234.3, "halfcheetah": 12135.0, "walker2d": 4592.3}
ENV_IDS = {"hopper": "Hopper-v4", "halfcheetah": "HalfCheetah-v4", "walker2d": "Walker2d-v4"}


class DatasetError(ValueError):
    """A dataset file that is missing, corrupt, truncated or has the wrong keys/shapes/dtypes."""


class Dataset(NamedTuple):
    """A whole dataset in memory (the keys of the HDF5 file)."""

    observations: np.ndarray  # [N, D] float32 s_t
    actions: np.ndarray  # [N, A] float32 a_t
    rewards: np.ndarray  # [N] float32 r_{t+1}
    next_observations: np.ndarray  # [N, D] float32 s_{t+1}
    next_actions: np.ndarray  # [N, A] float32 a_{t+1} of the behaviour policy
    terminals: np.ndarray  # [N] bool: s_{t+1} terminal
    timeouts: np.ndarray  # [N] bool: episode cut by the time limit at s_{t+1}

    @property
    def discounts(self) -> np.ndarray:
        """[N] float32 dm-env discount of each transition: 0 on termination, 1 otherwise (timeouts too)."""
        return (~self.terminals).astype(np.float32)

    @property
    def episode_ends(self) -> np.ndarray:
        """[N] bool: the transition is the last of its episode (terminal or timeout)."""
        return self.terminals | self.timeouts

    @property
    def size(self) -> int:
        """N, the number of transitions (``len()`` would break NamedTuple's ``_replace``)."""
        return int(self.rewards.shape[0])


def env_name(env_id: str) -> str:
    """``"Hopper-v4"`` → ``"hopper"`` (the key of the reference scores)."""
    name = env_id.split("-")[0].lower()
    if name not in REF_MIN_SCORE:
        raise ValueError(f"no D4RL reference scores for {env_id!r}; known: {sorted(ENV_IDS.values())}")
    return name


def normalized_score(env_id: str, episode_return):
    """D4RL normalised score 100 · (R − R_random) / (R_expert − R_random)."""
    name = env_name(env_id)
    lo, hi = REF_MIN_SCORE[name], REF_MAX_SCORE[name]
    return 100.0 * (np.asarray(episode_return, np.float64) - lo) / (hi - lo)


def dataset_path(directory: str, env_id: str, kind: str) -> str:
    """``directory/<env>-<kind>-v4.hdf5``, e.g. ``data/hopper-medium-replay-v4.hdf5``."""
    return os.path.join(directory, f"{env_name(env_id)}-{kind}-v4.hdf5")


# ----------------------------------------------------------------------------- checks, IO
def validate(data: Dict[str, np.ndarray], *, source: str = "dataset") -> Dataset:
    """Checks keys, ranks, matching lengths and dimensions, dtypes and finiteness; returns a :class:`Dataset`."""
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise DatasetError(f"{source}: missing keys {missing} (a D4RL-style file has {list(KEYS)})")
    arrays = {k: np.asarray(data[k]) for k in KEYS}
    n = arrays["rewards"].shape[0] if arrays["rewards"].ndim == 1 else -1
    if n < 1:
        raise DatasetError(f"{source}: rewards must be a non-empty [N] array, got shape {arrays['rewards'].shape}")
    for key in ("observations", "actions", "next_observations", "next_actions"):
        if arrays[key].ndim != 2 or arrays[key].shape[0] != n:
            raise DatasetError(f"{source}: {key} must be [N={n}, D], got shape {arrays[key].shape}")
    for key in BOOL_KEYS:
        if arrays[key].shape != (n,):
            raise DatasetError(f"{source}: {key} must be [N={n}], got shape {arrays[key].shape}")
    if arrays["observations"].shape != arrays["next_observations"].shape:
        raise DatasetError(f"{source}: observations {arrays['observations'].shape} and next_observations "
                           f"{arrays['next_observations'].shape} differ")
    if arrays["actions"].shape != arrays["next_actions"].shape:
        raise DatasetError(f"{source}: actions {arrays['actions'].shape} and next_actions "
                           f"{arrays['next_actions'].shape} differ")
    for key in FLOAT_KEYS:
        if arrays[key].dtype != np.float32:
            raise DatasetError(f"{source}: {key} must be float32, got {arrays[key].dtype}")
        if not np.all(np.isfinite(arrays[key])):
            raise DatasetError(f"{source}: {key} holds non-finite values")
    for key in BOOL_KEYS:
        if arrays[key].dtype != np.bool_:
            raise DatasetError(f"{source}: {key} must be bool, got {arrays[key].dtype}")
    if np.any(arrays["terminals"] & arrays["timeouts"]):
        raise DatasetError(f"{source}: a transition is both terminal and timeout")
    return Dataset(**arrays)


def save(path: str, data: Dataset | Dict[str, np.ndarray], *, env_id: str, kind: str,
         attrs: Optional[Dict[str, object]] = None) -> str:
    """Writes a D4RL-style HDF5 file atomically (temp file + rename); validates first."""
    import h5py  # pylint: disable=import-outside-toplevel

    data = validate(data._asdict() if isinstance(data, Dataset) else data, source=path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for key, value in data._asdict().items():
            f.create_dataset(key, data=value, compression="gzip", compression_opts=4)
        f.attrs["env_id"] = env_id
        f.attrs["kind"] = kind
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["made_here"] = "D4RL-style dataset generated from envpool MuJoCo by environments.d4rl_style"
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    os.replace(tmp, path)
    return path


def load(path: str, *, env_id: Optional[str] = None) -> Dataset:
    """Reads and validates a D4RL-style HDF5 file.

    Raises:
      DatasetError: one message naming the file and the problem (missing, not HDF5 / truncated,
        missing keys, wrong shapes or dtypes, non-finite values, another environment's data).
    """
    import h5py  # pylint: disable=import-outside-toplevel

    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such dataset file")
    try:
        with h5py.File(path, "r") as f:
            data = {k: f[k][()] for k in KEYS if k in f}
            data.update({k: None for k in KEYS if k not in f})
            attrs = dict(f.attrs)
    except DatasetError:
        raise
    except Exception as error:  # h5py raises OSError/KeyError/... for truncated or corrupt files
        raise DatasetError(f"{path}: not a readable HDF5 dataset (corrupt or truncated?): "
                           f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from error
    missing = [k for k, v in data.items() if v is None]
    if missing:
        raise DatasetError(f"{path}: missing keys {missing} (a D4RL-style file has {list(KEYS)})")
    dataset = validate(data, source=path)
    stored = attrs.get("env_id")
    if env_id is not None and stored is not None and str(stored) != env_id:
        raise DatasetError(f"{path}: holds {stored!r} data, not {env_id!r}")
    return dataset


def attributes(path: str) -> Dict[str, object]:
    import h5py  # pylint: disable=import-outside-toplevel

    with h5py.File(path, "r") as f:
        return {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in f.attrs.items()}


def concatenate(parts: Sequence[Dataset]) -> Dataset:
    """Datasets one after another (medium-expert = medium + expert); episode ends stay as they were."""
    return Dataset(*(np.concatenate([getattr(p, k) for p in parts]) for k in KEYS))


# ----------------------------------------------------------------------------- episodes
def episode_ids(dataset: Dataset) -> np.ndarray:
    """[N] int: the episode index of each transition (a new episode after each terminal/timeout).

    Transitions after the last episode end (a collection cut mid-episode) form a final episode.
    """
    ends = dataset.episode_ends
    return np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)


def discounted_returns(dataset: Dataset, *, gamma: float) -> np.ndarray:
    """[N] float64 Monte-Carlo return-to-go G_t = r_{t+1} + γ G_{t+1} within each episode.

    G is cut at an episode's end (terminal: exact; timeout or a cut collection: truncated,
    biased low by the missing tail γ^k V(s_end)).
    """
    rewards = dataset.rewards.astype(np.float64)
    ends = dataset.episode_ends
    out = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if ends[t]:
            running = 0.0
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def episode_returns(dataset: Dataset) -> np.ndarray:
    """Undiscounted return of every complete episode (ending in a terminal or timeout)."""
    ids = episode_ids(dataset)
    totals = np.bincount(ids, weights=dataset.rewards.astype(np.float64))
    complete = np.zeros(totals.shape[0], bool)
    complete[ids[dataset.episode_ends]] = True
    return totals[complete]


def split_episodes(dataset: Dataset, *, holdout_fraction: float, seed: int = 0):
    """(train, held-out) by whole episodes, a random ``holdout_fraction`` of episodes held out."""
    ids = episode_ids(dataset)
    num = int(ids.max()) + 1
    rng = np.random.default_rng(seed)
    held = rng.permutation(num)[:max(1, int(round(holdout_fraction * num)))] if holdout_fraction > 0 else []
    mask = np.isin(ids, held)
    pick = lambda m: Dataset(*(getattr(dataset, k)[m] for k in KEYS))  # noqa: E731
    return pick(~mask), pick(mask)


# ----------------------------------------------------------------------------- policies
class MLPPolicy:
    """A deterministic MLP policy in numpy: relu hidden layers, tanh output (TD3's actor).

    Stored as ``.npz`` with ``w0, b0, w1, b1, ...`` (``w_i`` [in, out]) and optionally
    ``obs_mean``/``obs_std`` (inputs are normalised as (s − mean)/std first).
    """

    def __init__(self, path: str):
        try:
            with np.load(path) as f:
                arrays = {k: f[k].astype(np.float64) for k in f.files}
        except Exception as error:
            raise DatasetError(f"{path}: not a readable policy .npz ({type(error).__name__}: {error})") from error
        count = sum(1 for k in arrays if k.startswith("w"))
        if count == 0 or any(f"w{i}" not in arrays or f"b{i}" not in arrays for i in range(count)):
            raise DatasetError(f"{path}: a policy file needs w0, b0, ..., w{{k}}, b{{k}}; has {sorted(arrays)}")
        self.layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(count)]
        self.obs_mean = arrays.get("obs_mean")
        self.obs_std = arrays.get("obs_std")
        self.path = path

    @property
    def action_dim(self) -> int:
        return int(self.layers[-1][0].shape[1])

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        x = np.asarray(observation, np.float64)
        if self.obs_mean is not None:
            x = (x - self.obs_mean) / self.obs_std
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            x = np.tanh(x) if i == len(self.layers) - 1 else np.maximum(x, 0.0)
        return x


def noisy(policy: Callable[[np.ndarray], np.ndarray], *, noise_std: float, rng: np.random.Generator):
    """The behaviour policy clip(μ(s) + N(0, σ²), −1, 1): a deterministic policy with its exploration noise."""
    def act(observation: np.ndarray) -> np.ndarray:
        mean = policy(observation)
        return np.clip(mean + noise_std * rng.standard_normal(mean.shape), -1.0, 1.0)
    return act


class Collector:
    """Records D4RL-style transitions from a stream of (observation, action) → time step.

    Feed it every step of one environment: ``add(obs_t, action_t, timestep_{t+1}, truncated)``.
    The action drawn at an observation becomes the ``next_action`` of the transition that
    led into it; a transition whose next action is not yet known is *pending* and finished by
    the next ``add`` (or dropped by :meth:`dataset` if the stream ends first).
    """

    def __init__(self):
        self.rows: Dict[str, List[np.ndarray]] = {k: [] for k in KEYS}
        self._pending = False
        self._skip_next = False

    def __len__(self) -> int:
        return len(self.rows["rewards"]) - int(self._pending)

    def add(self, observation, action, reward: float, next_observation, *, last: bool, discount: float) -> None:
        """One environment step s_t, a_t → (r_{t+1}, s_{t+1}); ``last``/``discount`` of the step into s_{t+1}."""
        if self._skip_next:  # the action sent after a LAST step only resets the environment
            self._skip_next = False
            if self._pending:
                self.rows["next_actions"].append(np.asarray(action, np.float32))
                self._pending = False
            return
        if self._pending:
            self.rows["next_actions"].append(np.asarray(action, np.float32))
        self.rows["observations"].append(np.asarray(observation, np.float32))
        self.rows["actions"].append(np.asarray(action, np.float32))
        self.rows["rewards"].append(np.float32(reward))
        self.rows["next_observations"].append(np.asarray(next_observation, np.float32))
        terminal = bool(last and discount == 0.0)
        self.rows["terminals"].append(terminal)
        self.rows["timeouts"].append(bool(last and not terminal))
        self._pending = True
        self._skip_next = bool(last)

    def cut(self, next_action) -> None:
        """The stream stops at the current observation (a checkpoint segment ends).

        ``next_action``: the behaviour policy's action at that observation, which finishes the
        pending transition; an episode still open there becomes a timeout.
        """
        if self._pending:
            self.rows["next_actions"].append(np.asarray(next_action, np.float32))
            self._pending = False
            if not (self.rows["terminals"][-1] or self.rows["timeouts"][-1]):
                self.rows["timeouts"][-1] = True
        self._skip_next = False

    def dataset(self) -> Dataset:
        """Every finished transition (a pending last one, without its next action, is dropped)."""
        n = len(self)
        out = {}
        for key in KEYS:
            rows = self.rows[key][:n]
            if key in BOOL_KEYS:
                out[key] = np.asarray(rows, np.bool_).reshape(n)
            elif key == "rewards":
                out[key] = np.asarray(rows, np.float32).reshape(n)
            else:
                out[key] = np.asarray(rows, np.float32).reshape(n, -1) if n else np.zeros((0, 0), np.float32)
        return Dataset(**out)


def collect(env_id: str, policy: Callable[[np.ndarray], np.ndarray], *, num_transitions: int, seed: int) -> Dataset:
    """Runs ``policy`` (obs [D] → action [A] in [−1, 1]) in one envpool environment for ``num_transitions``.

    The collection ends when enough transitions are finished; the episode open then is
    marked as a timeout (cut), as D4RL's collectors do.
    """
    from environments.envpool_env import make  # pylint: disable=import-outside-toplevel

    env = make(env_id, num_envs=1, seed=seed)
    collector = Collector()
    try:
        ts = env.reset()
        obs = np.asarray(ts.observation[0])
        while len(collector) < num_transitions:
            action = np.asarray(policy(obs), np.float64)
            ts = env.step(action[None])
            next_obs = np.asarray(ts.observation[0])
            collector.add(obs, action, float(ts.reward[0]), next_obs, last=bool(ts.step_type[0] == 2),
                          discount=float(ts.discount[0]))
            obs = next_obs
        # one more action so the last transition gets its next action (not stepped)
        collector.add(obs, np.asarray(policy(obs), np.float64), 0.0, obs, last=False, discount=1.0)
    finally:
        env.close()
    data = collector.dataset()
    data = Dataset(*(getattr(data, k)[:num_transitions] for k in KEYS))
    if not data.episode_ends[-1]:
        data.timeouts[-1] = True
    return data


def action_dim(env_id: str) -> int:
    from environments.envpool_env import make  # pylint: disable=import-outside-toplevel

    with make(env_id, num_envs=1) as env:
        return int(env.action_bounds[0].shape[0])


# ----------------------------------------------------------------------------- CLI
def _summary_line(path: str, data: Dataset) -> str:
    returns = episode_returns(data)
    attrs = attributes(path)
    env_id = str(attrs.get("env_id", ""))
    score = f", normalised {normalized_score(env_id, returns).mean():.1f}" if len(returns) and env_id else ""
    return (f"{path}: {attrs.get('kind')} {env_id}, {data.size:,} transitions, obs {data.observations.shape[1]}, "
            f"act {data.actions.shape[1]}, {int(data.terminals.sum())} terminals, {int(data.timeouts.sum())} timeouts, "
            f"{len(returns)} episodes, return {returns.mean() if len(returns) else float('nan'):.1f} ± "
            f"{returns.std() if len(returns) else float('nan'):.1f}{score}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m environments.d4rl_style", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="collect a random/medium/expert dataset with a policy")
    g.add_argument("--env-id", required=True)
    g.add_argument("--kind", required=True, choices=["random", "medium", "expert"])
    g.add_argument("--policy", default=None, help="policy .npz (algorithms/td3/train.py writes policy.npz)")
    g.add_argument("--noise-std", type=float, default=0.1, help="Gaussian exploration noise of the policy")
    g.add_argument("--transitions", type=int, default=100_000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    c = sub.add_parser("combine", help="concatenate datasets (medium-expert)")
    c.add_argument("paths", nargs="+")
    c.add_argument("--kind", default="medium-expert", choices=list(KINDS))
    c.add_argument("--out", required=True)
    i = sub.add_parser("info", help="validate a dataset file and print its statistics")
    i.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    try:
        if args.command == "info":
            for path in args.paths:
                print(_summary_line(path, load(path)))
            return 0
        if args.command == "combine":
            parts = [load(p) for p in args.paths]
            envs = {str(attributes(p).get("env_id")) for p in args.paths}
            if len(envs) != 1:
                return fail(f"cannot combine datasets of different environments {sorted(envs)}")
            if len({p.observations.shape[1] for p in parts}) != 1:
                return fail("cannot combine datasets of different observation sizes")
            save(args.out, concatenate(parts), env_id=envs.pop(), kind=args.kind,
                 attrs={"sources": ",".join(args.paths)})
            print(_summary_line(args.out, load(args.out)))
            return 0
        # generate
        from environments.registry import UnknownEnvironmentError, check_env_id  # pylint: disable=import-outside-toplevel
        try:
            check_env_id(args.env_id)
            env_name(args.env_id)
        except (UnknownEnvironmentError, ValueError) as error:
            return fail(f"--env-id: {error}")
        if args.transitions < 1:
            return fail(f"--transitions must be >= 1, got {args.transitions}")
        if args.noise_std < 0:
            return fail(f"--noise-std must be >= 0, got {args.noise_std}")
        rng = np.random.default_rng(args.seed)
        dim = action_dim(args.env_id)
        if args.kind == "random":
            policy = lambda obs: rng.uniform(-1.0, 1.0, dim)  # noqa: E731
            source = "uniform random"
        else:
            if not args.policy:
                return fail(f"--policy is required for --kind {args.kind}")
            mlp = MLPPolicy(args.policy)
            if mlp.action_dim != dim:
                return fail(f"--policy {args.policy} outputs {mlp.action_dim} actions, {args.env_id} takes {dim}")
            policy = noisy(mlp, noise_std=args.noise_std, rng=rng)
            source = f"{args.policy} + N(0, {args.noise_std}²)"
        data = collect(args.env_id, policy, num_transitions=args.transitions, seed=args.seed)
        save(args.out, data, env_id=args.env_id, kind=args.kind, attrs={"policy": source, "seed": args.seed})
        print(_summary_line(args.out, load(args.out)))
        return 0
    except DatasetError as error:
        return fail(str(error))


if __name__ == "__main__":
    raise SystemExit(main())
