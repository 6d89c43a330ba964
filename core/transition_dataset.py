"""Offline transition datasets on disk: chunked ``.npy`` files, a JSON manifest, memory-mapped reads.

Format (version 1): a directory holding

* ``manifest.json``: ``{"format": "transition-dataset", "version": 1, "num_streams": B,
  "num_rows": N, "fields": {name: {"shape": [...], "dtype": "..."}},
  "chunks": [{"rows": r, "files": {name: {"path", "bytes", "sha256"}}}], "metadata": {...}}``;
* per chunk and field one ``chunk_<k>.<field>.npy`` of shape ``[r, B, *shape]``.

Rows are dm-env time steps of B parallel environment streams, time-major, each stored
once: ``step_type``, ``reward``, ``discount`` and ``observation`` of the time step and the
``action`` taken at it. Transition (t, b) is row t → row t + 1 of stream b:
``(observation[t], action[t], reward[t+1], discount[t+1], observation[t+1])``, valid unless
row t is ``LAST`` (the next row starts a new episode) or the last row. Observations are
stored once (a 1M-transition Atari dataset of single 84×84 frames is 7 GB on disk and is
never read whole): :meth:`TransitionDataset.transitions` gathers only the rows of a batch
from the memory-mapped chunks and, with ``frame_stack``, rebuilds stacks from the previous
rows of the same episode (frames before its start repeat its first frame, as envpool does).

The writer keeps at most one chunk in memory, writes each file to a temporary name and
renames it, and writes the manifest last, so a killed writer leaves no manifest (and the
directory is reported as incomplete). The reader checks every file against the manifest
(presence, ``.npy`` header shape and dtype, byte size, and by default the SHA-256), and
reports a corrupt or truncated file with one :class:`DatasetError` naming it.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

FORMAT = "transition-dataset"
VERSION = 1
MANIFEST = "manifest.json"
FIRST, MID, LAST = 0, 1, 2  # core.types.StepType


class DatasetError(RuntimeError):
    """A dataset directory that cannot be read: missing, incomplete, corrupt or truncated."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field_specs(num_streams: int, observation_shape: Sequence[int], observation_dtype: Any) -> Dict[str, dict]:
    del num_streams
    return {
        "step_type": {"shape": [], "dtype": "int8"},
        "reward": {"shape": [], "dtype": "float32"},
        "discount": {"shape": [], "dtype": "float32"},
        "action": {"shape": [], "dtype": "int32"},
        "observation": {"shape": [int(d) for d in observation_shape], "dtype": np.dtype(observation_dtype).name},
    }


class DatasetWriter:
    """Appends time-major rows ``[T, B, ...]`` and writes them in chunks of ``chunk_rows`` rows.

    Use as a context manager, or call :meth:`close` (which writes the manifest). Refuses a
    directory that already holds a manifest (nothing written is ever overwritten).
    """

    def __init__(self, path: str, *, num_streams: int, observation_shape: Sequence[int], observation_dtype: Any,
                 chunk_rows: int = 4096, metadata: Optional[Mapping[str, Any]] = None):
        if os.path.exists(os.path.join(path, MANIFEST)):
            raise DatasetError(f"{path} already holds a dataset ({MANIFEST}); choose a new directory")
        if chunk_rows < 1 or num_streams < 1:
            raise ValueError("chunk_rows and num_streams must be positive")
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.num_streams = int(num_streams)
        self.chunk_rows = int(chunk_rows)
        self.fields = _field_specs(num_streams, observation_shape, observation_dtype)
        self.metadata = dict(metadata or {})
        self._buffer: Dict[str, list] = {name: [] for name in self.fields}
        self._buffered = 0
        self._chunks: list = []
        self._rows = 0
        self._closed = False

    def append(self, *, step_type, reward, discount, observation, action) -> None:
        """Appends T rows of B streams (arrays ``[T, B, ...]``)."""
        arrays = dict(step_type=step_type, reward=reward, discount=discount, observation=observation, action=action)
        rows = None
        for name, value in arrays.items():
            spec = self.fields[name]
            value = np.asarray(value)
            expected = (self.num_streams, *spec["shape"])
            if value.shape[1:] != expected:
                raise ValueError(f"{name}: expected [T, {', '.join(map(str, expected))}], got {value.shape}")
            rows = value.shape[0] if rows is None else rows
            if value.shape[0] != rows:
                raise ValueError(f"{name}: {value.shape[0]} rows, other fields {rows}")
            self._buffer[name].append(value.astype(spec["dtype"], copy=False))
        self._buffered += rows
        while self._buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def _flush(self, rows: int) -> None:
        index = len(self._chunks)
        files = {}
        for name in self.fields:
            data = np.concatenate(self._buffer[name], axis=0)
            chunk, rest = data[:rows], data[rows:]
            self._buffer[name] = [rest] if len(rest) else []
            rel = f"chunk_{index:06d}.{name}.npy"
            final = os.path.join(self.path, rel)
            tmp = final + ".tmp"
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(chunk))
            os.replace(tmp, final)
            files[name] = {"path": rel, "bytes": os.path.getsize(final), "sha256": _sha256(final)}
        self._chunks.append({"rows": rows, "files": files})
        self._rows += rows
        self._buffered -= rows

    @property
    def num_rows(self) -> int:
        return self._rows + self._buffered

    def close(self) -> str:
        """Writes the last partial chunk and the manifest; returns the manifest path."""
        if self._closed:
            return os.path.join(self.path, MANIFEST)
        if self._buffered:
            self._flush(self._buffered)
        manifest = {"format": FORMAT, "version": VERSION, "num_streams": self.num_streams, "num_rows": self._rows,
                    "fields": self.fields, "chunks": self._chunks, "metadata": self.metadata}
        final = os.path.join(self.path, MANIFEST)
        with open(final + ".tmp", "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(final + ".tmp", final)
        self._closed = True
        return final

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()


def _read_npy_header(path: str):
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        return shape, fortran, dtype, f.tell()


class TransitionDataset:
    """A dataset directory opened for sampling; arrays stay memory-mapped on disk.

    Args:
      path: the dataset directory.
      verify: ``"checksum"`` (default: every file's SHA-256 against the manifest),
        ``"size"`` (headers and byte sizes only, for very large datasets) or ``"none"``.

    Raises:
      DatasetError: one message naming the directory or file and what is wrong with it.
    """

    def __init__(self, path: str, *, verify: str = "checksum"):
        if verify not in ("checksum", "size", "none"):
            raise ValueError(f"verify must be 'checksum', 'size' or 'none', got {verify!r}")
        self.path = path
        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.isdir(path):
            raise DatasetError(f"dataset directory {path} does not exist")
        if not os.path.exists(manifest_path):
            raise DatasetError(f"{path} has no {MANIFEST} (not a dataset, or its writer was interrupted)")
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise DatasetError(f"{manifest_path}: not a {FORMAT} v{VERSION} manifest")
            self.num_streams = int(manifest["num_streams"])
            self.num_rows = int(manifest["num_rows"])
            self.fields = manifest["fields"]
            chunks = manifest["chunks"]
            self.metadata = manifest.get("metadata", {})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{manifest_path} is corrupt ({type(error).__name__}: {error})") from None
        if sum(c["rows"] for c in chunks) != self.num_rows:
            raise DatasetError(f"{manifest_path} is corrupt: chunk rows do not add up to num_rows={self.num_rows}")
        self._arrays: Dict[str, list] = {name: [] for name in self.fields}
        for chunk in chunks:
            for name, spec in self.fields.items():
                info = chunk["files"][name]
                file = os.path.join(path, info["path"])
                expected_shape = (chunk["rows"], self.num_streams, *spec["shape"])
                if not os.path.exists(file):
                    raise DatasetError(f"dataset file {file} is missing")
                try:
                    shape, fortran, dtype, offset = _read_npy_header(file)
                except Exception as error:  # a broken header: numpy raises several types
                    raise DatasetError(f"dataset file {file} is corrupt (unreadable .npy header: {error})") from None
                if tuple(shape) != expected_shape or dtype != np.dtype(spec["dtype"]) or fortran:
                    raise DatasetError(f"dataset file {file} is corrupt: {shape}/{dtype} stored, "
                                       f"{expected_shape}/{spec['dtype']} expected by the manifest")
                size = os.path.getsize(file)
                needed = offset + int(np.prod(expected_shape)) * np.dtype(dtype).itemsize
                if verify != "none" and (size != info["bytes"] or size != needed):
                    raise DatasetError(f"dataset file {file} is truncated or damaged: {size} bytes, "
                                       f"{info['bytes']} expected")
                if verify == "checksum" and _sha256(file) != info["sha256"]:
                    raise DatasetError(f"dataset file {file} is corrupt: SHA-256 differs from the manifest")
                self._arrays[name].append(np.load(file, mmap_mode="r"))
        self._starts = np.cumsum([0] + [c["rows"] for c in chunks])
        step_type = self._rows("step_type", np.arange(self.num_rows))  # [N, B] int8: 1 byte per row
        self._step_type = step_type
        valid = step_type != LAST
        valid[-1:] = False
        self._valid = np.flatnonzero(valid.reshape(-1))  # flat t·B + b of every valid transition

    # ----------------------------------------------------------------------- reading

    @property
    def num_transitions(self) -> int:
        return int(self._valid.size)

    @property
    def observation_shape(self) -> tuple:
        return tuple(self.fields["observation"]["shape"])

    def _rows(self, name: str, t: np.ndarray, b: Optional[np.ndarray] = None) -> np.ndarray:
        """Rows ``t`` (all streams, or stream ``b[i]`` of row ``t[i]``) of field ``name``, gathered across chunks."""
        t = np.asarray(t, np.int64)
        chunk = np.searchsorted(self._starts, t, side="right") - 1
        spec = self.fields[name]
        tail = tuple(spec["shape"]) if b is not None else (self.num_streams, *spec["shape"])
        out = np.empty((t.shape[0], *tail), spec["dtype"])
        for c in np.unique(chunk):
            sel = np.flatnonzero(chunk == c)
            local = t[sel] - self._starts[c]
            order = np.argsort(local, kind="stable")  # sorted reads: sequential disk access
            rows = local[order]
            if b is None:
                out[sel[order]] = self._arrays[name][c][rows]
            else:
                out[sel[order]] = self._arrays[name][c][rows, b[sel][order]]
        return out

    def _observations(self, t: np.ndarray, b: np.ndarray, frame_stack: int) -> np.ndarray:
        if frame_stack == 1:
            return self._rows("observation", t, b)
        frames, cur = [], t.copy()
        for _ in range(frame_stack):
            frames.append(self._rows("observation", cur, b))
            back = (self._step_type[cur, b] != FIRST) & (cur > 0)
            cur = np.where(back, cur - 1, cur)
        return np.concatenate(frames[::-1], axis=1)  # oldest first, along the channel axis

    def transitions(self, indices: np.ndarray, *, frame_stack: int = 1) -> Dict[str, np.ndarray]:
        """The transitions ``indices`` (into ``0 … num_transitions − 1``) as numpy arrays ``[K, ...]``.

        Keys: ``observation``, ``action``, ``reward``, ``discount``, ``next_observation``,
        ``step_type`` (of the first observation). With ``frame_stack`` k > 1 the stored
        observations ``[C, H, W]`` become stacks ``[k·C, H, W]``.
        """
        flat = self._valid[np.asarray(indices, np.int64)]
        t, b = flat // self.num_streams, flat % self.num_streams
        return {
            "observation": self._observations(t, b, frame_stack),
            "action": self._rows("action", t, b),
            "reward": self._rows("reward", t + 1, b),
            "discount": self._rows("discount", t + 1, b),
            "next_observation": self._observations(t + 1, b, frame_stack),
            "step_type": self._step_type[t, b],
        }

    def sample(self, rng: np.random.Generator, batch_size: int, *, frame_stack: int = 1) -> Dict[str, np.ndarray]:
        """``batch_size`` transitions drawn uniformly with replacement."""
        return self.transitions(rng.integers(0, self.num_transitions, size=batch_size), frame_stack=frame_stack)

    def describe(self) -> str:
        obs = self.fields["observation"]
        return (f"{self.path}: {self.num_transitions:,} transitions in {self.num_rows:,} rows × "
                f"{self.num_streams} streams, {len(self._starts) - 1} chunks, observation "
                f"{tuple(obs['shape'])} {obs['dtype']}, metadata {json.dumps(self.metadata)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m core.transition_dataset DIR``: verifies every checksum and describes the dataset."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.transition_dataset", description=main.__doc__)
    parser.add_argument("path")
    parser.add_argument("--verify", default="checksum", choices=("checksum", "size", "none"))
    args = parser.parse_args(argv)
    try:
        print(TransitionDataset(args.path, verify=args.verify).describe())
    except DatasetError as error:
        import sys

        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
