"""The repository's setup files agree with each other and with the README."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def normalized(requirement: str) -> str:
    name, _, rest = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", requirement.strip()).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + rest.replace(" ", "")


def test_environment_yml_names_the_same_packages_and_ranges_as_pyproject():
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    wanted = {normalized(r) for r in project["dependencies"] + extras["instructor"] + extras["site"] + extras["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {normalized(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject.toml: {wanted - listed}"
    assert "-e ." in pip_section, "environment.yml must install the course itself"


def test_the_course_command_and_packages_are_declared():
    project = pyproject()
    assert project["project"]["scripts"]["course"] == "autograders.cli:main"
    assert set(project["tool"]["setuptools"]["packages"]) == {"utils", "autograders"}


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, re.MULTILINE)
    assert "make demo" in commands and "make test" in commands
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == "make test"


def test_nbgrader_config_points_at_the_course_layout():
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config().CourseDirectory
    assert Path(config.root) == ROOT
    assert (config.source_directory, config.release_directory) == ("solutions", "exercises")
    for folder in (config.submitted_directory, config.autograded_directory, config.feedback_directory):
        assert folder.startswith("coursework/")
    assert config.db_url.endswith("coursework/gradebook.db")
    assert "/coursework/" in (ROOT / ".gitignore").read_text()


def test_every_exercise_has_a_release_and_samples():
    sources = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    assert sources, "no exercises"
    for name in sources:
        assert (ROOT / "exercises" / name).is_dir(), f"exercises/{name} missing: run `course release {name}`"
        assert (ROOT / "autograders" / "samples" / name).is_dir(), f"no sample submissions for {name}"
