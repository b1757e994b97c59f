"""`es-mpi keys`: the job-file reference in Markdown, generated from the sections themselves."""

from es_mpi.job.sections import SECTIONS
from es_mpi.job.settings import describe


def job_reference(strategies):
    """Markdown reference of every job-file section and key; `strategies` is a StrategySchemas."""
    header = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    lines = []
    for name, cls in SECTIONS.items():
        lines += [f"### [{name}]", "", *header, *describe(cls, name), ""]
    for name, cls in strategies.by_name.items():
        lines += [f'### [strategy] with name = "{name}"', "", *header,
                  f"| `strategy.name` | string | `\"{strategies.default}\"` | one of {', '.join(strategies.by_name)} "
                  "| the algorithm |", *describe(cls, "strategy"), ""]
    return "\n".join(lines)
