"""Declarative state: an object names its arrays and nested parts; saving and loading follow.

Strategies, optimizers and the observation statistics keep their state in numpy attributes.
Each lists them once in `state_layout()`; `state_dict()` and `load_state_dict()` are derived from
that list, so a checkpoint round-trips exactly and a stored array of the wrong name, dtype or
shape is refused with a `StateError` naming the key, before anything is changed.
"""

import dataclasses

import numpy as np


class StateError(ValueError):
    """A stored state does not fit the object: `key` is the flat name ('optimizer/m'), `reason` why."""

    def __init__(self, key, reason):
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


@dataclasses.dataclass(frozen=True)
class Array:
    """One array of the state: its key, the attribute holding it, its dtype and shape.

    A shape entry is a fixed length (int) or a name (str): every array that uses the same name
    must have the same length there, whatever it is (the number of GA parents, say).
    """
    key: str
    attribute: str
    dtype: type
    shape: tuple = ()


@dataclasses.dataclass(frozen=True)
class Part:
    """A nested ArrayState (an optimizer, an elite memory) saved under `key/`."""
    key: str
    attribute: str


class ArrayState:
    def state_layout(self):
        """The Array and Part entries of this object's state, in saving order."""
        raise NotImplementedError

    def _arrays(self, prefix=""):
        """[(flat key, owner, Array)] over this object and its parts."""
        out = []
        for item in self.state_layout():
            if isinstance(item, Part):
                out += getattr(self, item.attribute)._arrays(f"{prefix}{item.key}/")
            else:
                out.append((prefix + item.key, self, item))
        return out

    def state_dict(self):
        """{flat key: array}; '/' in a key marks a nested part (an HDF5 group in checkpoints)."""
        return {key: np.asarray(getattr(owner, item.attribute), dtype=item.dtype) for key, owner, item in self._arrays()}

    def load_state_dict(self, state, share=None):
        """Check every stored array against the layout, then replace the attributes with copies;
        arrays that `share` holds (core/node_share.py) are node-shared: written in place, once per node."""
        arrays = self._arrays()
        expected = {key for key, _, _ in arrays}
        missing = [key for key in expected if key not in state]
        if missing:
            raise StateError(missing[0], "missing")
        unknown = sorted(set(state) - expected)
        if unknown:
            raise StateError(unknown[0], "not part of this state")
        lengths, loaded = {}, []
        for key, owner, item in arrays:
            value = np.asarray(state[key])
            if value.dtype != np.dtype(item.dtype):
                raise StateError(key, f"dtype {value.dtype}, expected {np.dtype(item.dtype)}")
            if value.ndim != len(item.shape):
                raise StateError(key, f"shape {value.shape}, expected {len(item.shape)} dimensions")
            for axis, (length, want) in enumerate(zip(value.shape, item.shape)):
                if isinstance(want, str):
                    want = lengths.setdefault(want, length)
                if length != want:
                    raise StateError(key, f"shape {value.shape}: axis {axis} has {length} entries, expected {want}")
            loaded.append((owner, item, value))
        shared = []
        for owner, item, value in loaded:
            current = getattr(owner, item.attribute)
            if share is not None and share.holds(current):
                shared.append((current, value))
            else:
                setattr(owner, item.attribute, item.dtype(value) if not item.shape else np.array(value, dtype=item.dtype))
        if share is not None:
            share.load(shared)
