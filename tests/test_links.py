"""One setting ([tool.course] in pyproject.toml) moves every badge and setup cell; the setup cell does the right
thing with the helpers installed, shadowed by a student's own `utils.py`, missing, and on Colab."""

import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run

from autograders import links
from autograders.course import Course, Public

PUBLIC = Course(ROOT).public


def test_every_notebook_points_at_the_configured_public_repository():
    assert links.check(Course(ROOT)) == []


def test_the_badge_and_the_setup_name_the_public_repository_and_branch():
    public = Public("someone/elsewhere", "spring-2027")
    assert "github/someone/elsewhere/blob/spring-2027/lectures/01.ipynb" in links.badge(public, "lectures/01.ipynb")
    assert '_pip = "autodiff-course @ git+https://github.com/someone/elsewhere@spring-2027"' in links.setup_block(public)


@pytest.mark.pipeline
def test_one_edit_and_one_command_move_every_badge(tmp_path):
    course = tmp_path / "course"
    for folder in ("lectures", "solutions", "exercises"):
        shutil.copytree(ROOT / folder, course / folder)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    text = (ROOT / "pyproject.toml").read_text()
    (course / "pyproject.toml").write_text(re.sub(r'public-repository = "[^"]*"', 'public-repository = "uni-x/ad-2027"', text))
    assert run(["course", "links", "--check"], cwd=course).returncode == 1
    result = run(["course", "links"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run(["course", "links", "--check"], cwd=course).returncode == 0
    notebooks = sorted(course.glob("lectures/*.ipynb")) + sorted(course.glob("exercises/*/*.ipynb"))
    assert len(notebooks) == 13
    for path in notebooks:
        text = path.read_text()
        assert "github/uni-x/ad-2027/blob/main/" in text and "git+https://github.com/uni-x/ad-2027@main" in text, path
        assert PUBLIC.repository not in text, path


# ---- the setup block itself, run as a notebook would run it


def _python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _run_setup(cwd, python=sys.executable, prelude=""):
    code = prelude + _python(links.setup_block(PUBLIC))
    return subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_with_the_helpers_installed_the_setup_does_nothing(tmp_path):
    result = _run_setup(tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stderr


@pytest.mark.parametrize("shadow", ["utils.py", "utils/__init__.py"])
def test_a_students_own_utils_does_not_fool_the_setup(tmp_path, shadow):
    (tmp_path / shadow).parent.mkdir(exist_ok=True)
    (tmp_path / shadow).write_text("def helper():\n    return 42\n")
    result = _run_setup(tmp_path, prelude="import sys; sys.path.insert(0, '')\n")
    assert result.returncode != 0
    assert "hides the course's helpers: rename it" in result.stderr and shadow in result.stderr


# As if the course's helpers were not installed: no finder may find `utils` until "pip" has run.
NOT_INSTALLED = """
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "utils" or name.startswith("utils."):
            raise ModuleNotFoundError(f"No module named {name!r}")
BLOCK = NotInstalled()
sys.meta_path.insert(0, BLOCK)
"""


def test_without_the_helpers_the_setup_says_what_to_run(tmp_path):
    result = _run_setup(tmp_path, prelude=NOT_INSTALLED)
    assert result.returncode != 0
    assert f'pip install "{PUBLIC.pip}"' in result.stderr, result.stderr  # the message names what to run


def test_on_colab_the_setup_installs_the_student_package(tmp_path):
    """On Colab (google.colab imported) the setup runs %pip install of the public package, then imports it."""
    prelude = NOT_INSTALLED + (
        "import types\n"
        "sys.modules['google'] = types.ModuleType('google'); sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        "calls = []\n"
        "class Shell:\n"
        "    def run_line_magic(self, name, line):\n"
        "        calls.append((name, line.format(**globals()))); sys.meta_path.remove(BLOCK)\n"  # as IPython expands {_pip}
        "import builtins; builtins.get_ipython = lambda: Shell()\n"
        "import atexit; atexit.register(lambda: print(calls, 'utils.checks' in sys.modules))\n"
    )
    result = _run_setup(tmp_path, prelude=prelude)
    assert result.returncode == 0, result.stderr
    assert f"[('pip', 'install -q \"{PUBLIC.pip}\"')] True" in result.stdout
