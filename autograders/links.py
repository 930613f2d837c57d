"""Every notebook's "Open in Colab" badge and setup cell point where students get the course.

The one setting is [tool.course] in pyproject.toml (public-repository, public-branch). After changing it,
`course links` rewrites the badge (the first markdown cell) and the setup block (the first code cell's
leading `try:` block) of every lecture, every exercise's source notebook and its samples, then
regenerates exercises/ with nbgrader. `tests/test_links.py` fails when a notebook disagrees.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from autograders.course import Course, Public

BADGE = re.compile(
    r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\([^)\s]*\)"
)

SETUP = '''try:  # the course's helpers (`utils`): on Colab this cell installs them, elsewhere it says how
    import utils.checks
    utils.COURSE  # the course's own, not a student's utils.py
except (ImportError, AttributeError):
    import importlib
    import sys
    _found = getattr(sys.modules.get("utils"), "__file__", None)
    if _found and not hasattr(sys.modules["utils"], "COURSE"):
        raise ImportError(f"{{_found}} hides the course's helpers: rename it, then restart the kernel") from None
    _pip = "{pip}"
    if "google.colab" not in sys.modules:
        raise ImportError(f'the helpers are missing: pip install "{{_pip}}", then restart the kernel') from None
    %pip install -q "{{_pip}}"
    importlib.invalidate_caches()
    import utils.checks'''


def badge(public: Public, path: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({public.colab(path)})"


def setup_block(public: Public) -> str:
    return SETUP.format(pip=public.pip)


def notebooks(course: Course) -> dict[Path, str]:
    """Each notebook that carries a badge, with the path students open it at in the public repository."""
    found = {path: f"lectures/{path.name}" for path in sorted((course.root / "lectures").glob("*.ipynb"))}
    for name in course.exercise_names():
        public_path = f"exercises/{name}/{course.exercise(name).source.name}"
        found[course.exercise(name).source] = public_path
        samples = Path(__file__).resolve().parent / "samples" / name
        if samples.is_relative_to(course.root):  # the course's own samples, not those of a copy elsewhere
            found.update({path: public_path for path in sorted(samples.rglob("*.ipynb"))})
    return found


def _leading_block(source: str) -> tuple[str, str]:
    """(the setup block at the top of a code cell, the rest): the block runs from `try:` to the first blank line."""
    if not source.startswith("try:"):
        return "", source
    block, _, rest = source.partition("\n\n")
    return block, rest


def linked(notebook: nbformat.NotebookNode, public: Public, path: str) -> list[str]:
    """Point the notebook's badge and setup block at `public`; return what was wrong (empty: it already did)."""
    wrong = []
    markdown = next((c for c in notebook.cells if c.cell_type == "markdown"), None)
    want = badge(public, path)
    if markdown is None or not BADGE.search(markdown.source):
        wrong.append("no Open in Colab badge in its first markdown cell")
    elif BADGE.search(markdown.source).group(0) != want:
        wrong.append("its Colab badge points elsewhere")
        markdown.source = BADGE.sub(want, markdown.source, count=1)
    code = next((c for c in notebook.cells if c.cell_type == "code"), None)
    block, rest = _leading_block(code.source) if code is not None else ("", "")
    if not block:
        wrong.append("no setup block (`try: import utils.checks ...`) at the top of its first code cell")
    elif block != setup_block(public):
        wrong.append("its setup cell installs from elsewhere")
        code.source = setup_block(public) + ("\n\n" + rest if rest else "")
    return wrong


def check(course: Course) -> list[str]:
    """Every notebook that disagrees with [tool.course], and how."""
    problems = []
    for path, public_path in notebooks(course).items():
        for wrong in linked(nbformat.read(path, as_version=4), course.public, public_path):
            problems.append(f"{course.relative(path)}: {wrong}")
    released = course.root / "exercises"
    for path in sorted(released.glob("*/*.ipynb")):
        for wrong in linked(nbformat.read(path, as_version=4), course.public, str(path.relative_to(course.root))):
            problems.append(f"{course.relative(path)}: {wrong} (run `course links`)")
    return problems


def apply(course: Course) -> list[Path]:
    """Rewrite what disagrees with [tool.course]; regenerate the releases; return the notebooks changed."""
    changed = []
    for path, public_path in notebooks(course).items():
        notebook = nbformat.read(path, as_version=4)
        if linked(notebook, course.public, public_path):
            nbformat.write(notebook, path)
            changed.append(path)
    for name in course.exercise_names():
        course.forget(name)
        course.generate_release(name)
    return changed
