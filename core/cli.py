"""The CLI contract shared by every training script (see WORKSPACE.md).

``python -m algorithms.<paper>.train PRESET [--field value ...]``: the preset comes
first, then overrides; ``--help`` lists presets and fields. Bad input fails before any
work with one message naming the problem and exit status 2, no traceback.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import platform
import subprocess
import sys
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple


class ConfigError(ValueError):
    """An invalid config value; the message names the field and the allowed values."""


def require(condition: bool, field: str, message: str) -> None:
    """Raises :class:`ConfigError` ``"<field>: <message>"`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"--{field.replace('_', '-')}: {message}")


def config_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def parse_cli(
    presets: Mapping[str, Tuple[str, Any]], argv: Optional[Sequence[str]] = None, prog: str = ""
) -> Tuple[str, Any]:
    """Parses ``PRESET [--field value ...]`` with tyro; returns (preset name, config)."""
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    helping = any(a in ("-h", "--help") for a in argv)
    if helping and (not argv or argv[0] not in presets):
        # Top-level help: the presets, then the fields (shown with the first preset's values).
        name = prog or "train"
        print(f"usage: {name} PRESET [--field value ...]\n\npresets:")
        for preset, (description, _) in presets.items():
            print(f"  {preset:<10} {description}")
        first = next(iter(presets))
        print(f"\nfields (defaults of the {first!r} preset; `{name} PRESET --help` shows that preset's):")
        sys.stdout.flush()
        argv = [first, "--help"]
    elif not helping:
        if not argv or argv[0].startswith("-"):
            raise ConfigError(f"the first argument must be a preset, one of {sorted(presets)}")
        if argv[0] not in presets:
            close = difflib.get_close_matches(argv[0], list(presets), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown preset {argv[0]!r}{hint}; choose one of {sorted(presets)}")
    cfg = tyro.extras.overridable_config_cli(dict(presets), args=argv, prog=prog or None)
    return argv[0], cfg


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def cli_main(
    presets: Mapping[str, Tuple[str, Any]],
    main: Callable[..., Any],
    argv: Optional[Sequence[str]] = None,
    prog: str = "",
) -> Any:
    """Parse, validate, run ``main(cfg, preset=name)``; user errors exit 2 with one line."""
    from core.checkpoint import CheckpointError

    known = (ConfigError, CheckpointError)
    try:
        from environments import UnknownEnvironmentError  # noqa: WPS433 (optional layer)

        known = known + (UnknownEnvironmentError,)
    except ImportError:  # pragma: no cover - environments is part of this repo
        pass
    try:
        preset, cfg = parse_cli(presets, argv, prog)
        cfg.validate()
        return main(cfg, preset=preset)
    except known as error:
        fail(str(error))


def git_sha() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "dm-haiku", "optax", "chex", "rlax", "envpool", "gymnax", "orbax-checkpoint"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import jax

        found["device"] = str(jax.devices()[0].device_kind)
        found["num_devices"] = jax.local_device_count()
    except Exception:  # pragma: no cover
        pass
    return found


def write_json(path: str, obj: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def prepare_out_dir(out_dir: str, cfg: Any, *, resumable: bool) -> None:
    """Creates ``out_dir`` and writes ``config.json``.

    When the directory already holds a run (``resumable``: it has checkpoints), its
    ``config.json`` must match ``cfg`` field for field, otherwise :class:`ConfigError`
    names the differing fields and nothing is written.
    """
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "config.json")
    new = config_dict(cfg)
    if resumable and os.path.exists(path):
        with open(path) as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError as error:
                raise ConfigError(f"--out-dir: {path} is not valid JSON ({error}); use a new --out-dir")
        diff = sorted(k for k in set(old) | set(new) if k != "out_dir" and old.get(k) != new.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
            raise ConfigError(
                f"--out-dir: {out_dir} holds a run with a different config ({shown}); "
                "resume with the same config or use a new --out-dir"
            )
    write_json(path, new)


def summary(
    *,
    algorithm: str,
    preset: str,
    cfg: Any,
    headline_name: str,
    headline_value: Any,
    env_steps: Optional[int],
    wall_s: float,
    compile_s: Optional[float],
    sps_steady: Optional[float],
    extra: Optional[dict] = None,
) -> dict:
    """The ``summary.json`` object of the CLI contract."""
    out = {
        "algorithm": algorithm,
        "preset": preset,
        "seed": getattr(cfg, "seed", None),
        "headline": {"name": headline_name, "value": headline_value},
        "env_id": getattr(cfg, "env_id", None),
        "env_steps": env_steps,
        "wall_s": round(wall_s, 3),
        "compile_s": None if compile_s is None else round(compile_s, 3),
        "sps_steady": None if sps_steady is None else round(sps_steady, 1),
        "versions": versions(),
        "git_sha": git_sha(),
    }
    if extra:
        out.update(extra)
    return out
