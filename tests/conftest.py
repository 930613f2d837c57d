"""Shared fixtures: a throw-away copy of the course, so tests never touch the real coursework/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's console commands: course, nbgrader


def copy_course(target: Path, cell_timeout: int | None = None) -> Path:
    """The parts of the course that grading needs: config, sources, releases (and a shorter time limit)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", target)
    if cell_timeout is not None:  # tests that wait for infinite loops need not wait 30 s
        with (target / "nbgrader_config.py").open("a") as config:
            config.write(f"\nc.Execute.timeout = {cell_timeout}\n")
    shutil.copytree(ROOT / "solutions", target / "solutions")
    shutil.copytree(ROOT / "exercises", target / "exercises")
    return target


def run(command: list, cwd: Path, activated: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console command of this environment, as an instructor would type it.

    By default PATH is left as it is, as when `make` calls .venv/bin/course; `activated` puts the
    environment's scripts first, as `source .venv/bin/activate` does (stock nbgrader needs that).
    """
    env = dict(os.environ)
    if activated:
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / command[0]), *map(str, command[1:])], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def course_copy(tmp_path):
    return copy_course(tmp_path / "course")
