"""Orbax checkpointing of a whole run: save every N steps, keep the last K, resume.

A run's checkpoint is one pytree (train state, replay buffer, PRNG keys, counters, ...)
saved under ``<out_dir>/checkpoints/<step>/``. Orbax writes each step to a temporary
directory and renames it on commit, so a run killed mid-save leaves the previous
checkpoints intact. Restoring needs a template pytree of the same structure, shapes and
dtypes (usually the freshly initialised state), which is also how an incompatible
checkpoint (a different config) is detected.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored: corrupt, or written by a different config."""


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype), tree)


class Checkpointer:
    """Saves and restores step-indexed pytrees in ``directory`` (keeps the newest ``max_to_keep``)."""

    def __init__(self, directory: str, *, max_to_keep: int = 2):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.directory = os.path.abspath(directory)
        # Orbax logs a JSON parse failure at ERROR level before raising; we raise our own.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, tree: Any) -> None:
        """Writes ``tree`` as checkpoint ``step`` (blocking; the write is atomic)."""
        tree = jax.device_get(tree)
        self._manager.save(int(step), args=ocp.args.StandardSave(tree), force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int, template: Any) -> Any:
        """Restores checkpoint ``step`` into the structure of ``template``.

        Raises:
          CheckpointError: naming the step and directory, when the files are corrupt or
            their shapes/dtypes/structure differ from ``template`` (another config).
            Nothing on disk is modified, so earlier checkpoints stay available.
        """
        try:
            restored = self._manager.restore(
                int(step), args=ocp.args.StandardRestore(_abstract(jax.device_get(template)))
            )
        except Exception as error:  # orbax raises many types; report them as one
            others = [s for s in self.steps() if s != step]
            hint = (
                f" Earlier checkpoints in that directory: {others}; delete "
                f"{os.path.join(self.directory, str(step))} to resume from step {others[-1]}."
                if others
                else " Use a new --out-dir to start afresh."
            )
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: "
                f"{type(error).__name__}: {str(error).splitlines()[0][:300]}.{hint}"
            ) from error
        expected, got = jax.tree.leaves(_abstract(jax.device_get(template))), jax.tree.leaves(restored)
        mismatched = [
            f"{e.shape}/{e.dtype} expected, {np.shape(g)}/{np.asarray(g).dtype} stored"
            for e, g in zip(expected, got)
            if tuple(e.shape) != tuple(np.shape(g)) or e.dtype != np.asarray(g).dtype
        ]
        if len(expected) != len(got) or mismatched:
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: it was written by a "
                f"different configuration ({len(got)} arrays stored, {len(expected)} expected; "
                f"{'; '.join(mismatched[:3])}). Resume with the run's own config or use a new --out-dir."
            )
        return jax.tree.unflatten(jax.tree.structure(template), got)

    def close(self) -> None:
        self._manager.close()
