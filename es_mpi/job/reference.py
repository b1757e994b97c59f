"""`es-mpi keys`: the job-file reference in Markdown, generated from the sections themselves."""

from es_mpi.job.sections import SECTIONS
from es_mpi.job.settings import describe
from es_mpi.job.strategy_sections import DEFAULT_STRATEGY, STRATEGY_SETTINGS


def job_reference():
    """Markdown reference of every job-file section and key."""
    header = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    lines = []
    for name, cls in SECTIONS.items():
        lines += [f"### [{name}]", "", *header, *describe(cls, name), ""]
    for name, cls in STRATEGY_SETTINGS.items():
        lines += [f'### [strategy] with name = "{name}"', "", *header,
                  f"| `strategy.name` | string | `\"{DEFAULT_STRATEGY}\"` | one of {', '.join(STRATEGY_SETTINGS)} "
                  "| the algorithm |", *describe(cls, "strategy"), ""]
    return "\n".join(lines)
