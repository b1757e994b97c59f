"""The README and the pages under docs/ point at things that exist.

A page moved or a file renamed leaves a dead link or a command that names a missing job file;
nothing else would notice. Read as text only: no subprocess, no es-mpi import.
"""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Files named in text or commands: jobs/x.toml, benchmarks/x.py, slurm/x.sbatch... (a name with a
# suffix, so that an env id such as es_mpi/Trace-v0 is not taken for a path).
NAMED_PATH = re.compile(r"(?<![\w/.-])((?:jobs|benchmarks|slurm|tests|docs|es_mpi|\.ci)/[\w./-]*\.\w+)")


def page_id(path):
    return str(path.relative_to(REPO))


def heading_anchors(path):
    """GitHub's anchors: lower case, punctuation dropped, spaces to hyphens (code blocks skipped)."""
    anchors, in_code = set(), False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def prose(path):
    """The page without fenced code blocks, where `[x](y)` is not a link."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)


def relative_links(path):
    return [target for target in LINK.findall(prose(path))
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {page_id(linked)}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_named_repository_path_exists(page):
    named = {match.rstrip(".") for match in NAMED_PATH.findall(page.read_text())}
    missing = sorted(path for path in named if "*" not in path and not (REPO / path).exists())
    assert not missing, f"{page_id(page)} names missing paths: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / target.partition("#")[0]).resolve()
              for target in relative_links(REPO / "README.md")}
    unlinked = [page_id(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_is_short_and_names_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for command in ("make train", "make test"):
        assert command in text, f"README.md does not name `{command}`"
