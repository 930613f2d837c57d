"""`course site` (`make site`): the course website, built from the notebooks' stored outputs with Sphinx and
myst-nb, nothing executed: an index of the lectures and exercises, navigation, search, math, the graph
pictures and plots, and "Open in Colab" buttons from the one configured location ([tool.course]).

Exercises appear as released (exercises/, never solutions/). MathJax is served from the site itself
(sphinx-mathjax-offline's copy), so math renders with no network. `course publish` takes the site along.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograders.course import Course, CourseError

CONF = '''
project = "Automatic differentiation with PyTorch"
author = "the autodiff-course authors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax 3 served by the site itself: math with no network
nb_execution_mode = "off"  # the stored outputs, as the lectures were executed and checked
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "sphinx_book_theme"
html_title = "Automatic differentiation with PyTorch"
html_theme_options = {{
    "repository_url": {url!r},
    "repository_branch": {branch!r},
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {{"colab_url": "https://colab.research.google.com", "notebook_interface": "jupyterlab"}},
    "show_toc_level": 2,
}}
'''

INDEX = """# Automatic differentiation with PyTorch

Seven lectures that take automatic differentiation apart, computed and checked, and six exercises to
solve and hand in. Each page opens in Colab with the rocket button at its top; the source of all of it is
<{url}>.

```{{toctree}}
:caption: Lectures
:maxdepth: 1

{lectures}
```

```{{toctree}}
:caption: Exercises
:maxdepth: 1

{exercises}
```
"""


@dataclass
class Built:
    pages: int
    seconds: float
    folder: Path


def sources(course: Course, folder: Path) -> None:
    """The site's source tree: the lectures and the releases, under the paths they have in the public repository."""
    lectures = sorted((course.root / "lectures").glob("*.ipynb"))
    (folder / "lectures").mkdir()
    for path in lectures:
        shutil.copy(path, folder / "lectures" / path.name)
    exercises = []
    for name in course.exercise_names():
        release = course.release_folder(name) / course.exercise(name).source.name
        if not release.is_file():
            raise CourseError(f"exercises/{name}/ is missing: run `course release {name}` first")
        (folder / "exercises" / name).mkdir(parents=True)
        shutil.copy(release, folder / "exercises" / name / release.name)
        exercises.append(f"exercises/{name}/{release.stem}")
    (folder / "index.md").write_text(INDEX.format(
        url=course.public.url,
        lectures="\n".join(f"lectures/{p.stem}" for p in lectures),
        exercises="\n".join(exercises),
    ))
    (folder / "conf.py").write_text(CONF.format(url=course.public.url, branch=course.public.branch))


def build(course: Course, out: Path | None = None) -> Built:
    """Build the site into `out` (default: site/ in the course); return its page count and build time."""
    from sphinx.cmd.build import build_main

    out = Path(out or course.root / "site")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course-site-") as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        sources(course, source)
        staging = Path(tmp) / "html"
        status = build_main(["-b", "html", "-q", "-j", "1", str(source), str(staging)])
        if status != 0:
            raise CourseError(f"Sphinx could not build the site (exit status {status}): see its messages above")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(staging, out, ignore=shutil.ignore_patterns(".doctrees", ".buildinfo"))
    pages = len([p for p in out.rglob("*.html") if p.name not in ("genindex.html", "search.html")])
    return Built(pages, time.monotonic() - started, out)
