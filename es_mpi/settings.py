"""Typed, range-checked settings: the building block of every job-file section.

A section is a frozen dataclass whose fields are declared with `setting(...)`.
`build_section` turns a TOML table into one, naming file, key and reason on error.
"""

import dataclasses
import math

from .errors import ConfigError

_KINDS = ("int", "float", "str", "bool", "int_list", "table", "int_or_str")


def setting(default, kind, *, lo=None, hi=None, choices=None, optional=False, doc=""):
    """Declare a field: its TOML kind, bounds (inclusive), allowed words, and help text."""
    assert kind in _KINDS, kind
    meta = dict(kind=kind, lo=lo, hi=hi, choices=choices, optional=optional, doc=doc)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _check_kind(value, kind, path, key):
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int_list": isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "table": isinstance(value, dict),
        "int_or_str": isinstance(value, (int, str)) and not isinstance(value, bool),
    }[kind]
    if not ok:
        wanted = {"int_list": "a list of integers", "table": "a table",
                  "int_or_str": "an integer or a word"}.get(kind, f"a {kind}")
        raise ConfigError(path, key, f"expected {wanted}, got {value!r}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(path, key, f"must be finite, got {value!r}")
    return value


def _check_range(value, meta, path, key):
    lo, hi, choices = meta["lo"], meta["hi"], meta["choices"]
    if isinstance(value, str):
        if choices is not None and value not in choices:
            raise ConfigError(path, key, f"must be one of {', '.join(choices)}; got {value!r}")
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if lo is not None and item < lo:
            raise ConfigError(path, key, f"must be >= {lo}, got {item!r}")
        if hi is not None and item > hi:
            raise ConfigError(path, key, f"must be <= {hi}, got {item!r}")


def build_section(cls, table, path, prefix):
    """Validate `table` against dataclass `cls`; `prefix` is the section name for messages."""
    if not isinstance(table, dict):
        raise ConfigError(path, prefix, f"expected a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(path, f"{prefix}.{key}", f"unknown key (known: {known})")
    values = {}
    for name, field in fields.items():
        if name not in table:
            continue
        key, meta = f"{prefix}.{name}", field.metadata
        value = _check_kind(table[name], meta["kind"], path, key)
        _check_range(value, meta, path, key)
        values[name] = value
    return cls(**values)


def section_to_dict(section):
    """The section as a plain TOML-able dict, optional fields left unset dropped."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


def describe(cls, prefix):
    """Lines of `key = default  # help` for documentation and `--help`."""
    lines = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines.append(f"{prefix}.{field.name} ({meta['kind']}, default {default!r}): {meta['doc']}")
    return lines
