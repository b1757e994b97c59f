"""Writing a job back as TOML text (tomllib reads only): the text every checkpoint stores.

tomli-w escapes what a hand-written writer forgets (newlines, control characters), so any
string a job accepts comes back unchanged when the checkpoint's job text is read again.
"""

import tomli_w


def dump_toml(sections):
    """Write {section: {key: value}} as TOML."""
    return tomli_w.dumps(sections)
