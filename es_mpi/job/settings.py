"""Typed, range-checked settings: the building block of every job-file section.

A section is a frozen dataclass whose fields are declared with `setting(...)`.
`build_section` turns a TOML table into one, naming file, key and reason on error.
"""

import dataclasses
import json
import math

from es_mpi.core.errors import ConfigError

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
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
    integers = value if kind == "int_list" else [value] if kind in ("int", "int_or_str") else []
    if ok and any(isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX for item in integers):
        raise ConfigError(path, key, f"{value!r} does not fit a 64-bit integer (what a checkpoint stores)")
    if not ok:
        wanted = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                  "int_list": "a list of integers", "table": "a table",
                  "int_or_str": "an integer or a word"}[kind]
        raise ConfigError(path, key, f"expected {wanted}, got {value!r}")
    if isinstance(value, str) and not is_utf8(value):
        raise ConfigError(path, key, f"{value!r} is not UTF-8 text (a checkpoint stores the job as text)")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(path, key, f"must be finite, got {value!r}")
    return value


def is_utf8(text):
    """False for a str holding undecodable bytes (a file name or argument passed through surrogateescape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


_KIND_NAMES = {"int": "integer", "float": "float", "str": "string", "bool": "bool",
               "int_list": "list of integers", "table": "table", "int_or_str": "integer or word"}


def _bound_text(bound):
    """Bounds such as 2**63 - 1 written the way people read them."""
    if isinstance(bound, int) and bound >= 2**30:
        for power in range(30, 65):
            if bound in (2**power, 2**power - 1):
                return f"2^{power}" + (" - 1" if bound != 2**power else "")
    return str(bound)


def _allowed(meta):
    """The allowed values of a setting in words: choices and/or inclusive bounds."""
    parts = []
    if meta["choices"]:
        parts.append("one of " + ", ".join(meta["choices"]))
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and hi is not None:
        parts.append(f"{_bound_text(lo)} .. {_bound_text(hi)}")
    elif lo is not None:
        parts.append(f">= {_bound_text(lo)}")
    elif hi is not None:
        parts.append(f"<= {_bound_text(hi)}")
    if meta["kind"] == "float":
        parts.append("finite")
    return "; ".join(parts) or "any"


def _default_text(field):
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return "unset" if default is None else json.dumps(default)


def describe(cls, prefix):
    """One Markdown table row per setting: key, type, default, allowed values, meaning."""
    rows = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        row = (f"`{prefix}.{field.name}`", _KIND_NAMES[meta["kind"]], f"`{_default_text(field)}`",
               _allowed(meta), meta["doc"])
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return rows
