"""An adversarial corpus for exercise 01: submissions that try to break, fool or harm the grader.

Each case starts from a sample (alice: correct, bob: every gradient 2x too large), changes it the
way a student might, and names the score it must get and words its reason must contain. Points:
test_neuron_forward 2, test_neuron_backward 4, test_shared_forward 1, test_shared_backward 3.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

SAMPLES = Path(__file__).resolve().parents[1] / "autograders" / "samples" / "ex01"


def _sample(name: str) -> nbformat.NotebookNode:
    path = SAMPLES / "alice" / "ex01.ipynb" if name == "alice" else SAMPLES / f"{name}.ipynb"
    return nbformat.read(path, as_version=4)


def _index(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _insert(nb, before: str | None, source: str):
    """A new plain code cell, before the cell with that grade_id (None: at the end)."""
    nb.cells.insert(len(nb.cells) if before is None else _index(nb, before), nbformat.v4.new_code_cell(source))
    return nb


def _edit(nb, grade_id: str, old: str, new: str):
    cell = nb.cells[_index(nb, grade_id)]
    assert old in cell.source, (grade_id, old)
    cell.source = cell.source.replace(old, new)
    return nb


PATCH_COMPARISONS = """\
import numpy, torch, torch.testing, utils.checks
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
utils.checks.assert_grads_match = utils.checks.assert_values_match = lambda *a, **k: None
assert_grads_match = assert_values_match = lambda *a, **k: None
"""

TAMPER_FILES = """\
import os, pathlib, shutil, socket
hits = 0
for folder in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path.home(), pathlib.Path('/work'), pathlib.Path('/tmp')]:
    for path in list(folder.rglob('*.db'))[:1000] if folder.exists() else []:
        try:
            path.write_bytes(b'all your grades are belong to us'); hits += 1
        except OSError:
            pass
    for path in list(folder.rglob('solutions'))[:100] if folder.exists() else []:
        shutil.rmtree(path, ignore_errors=True)
try:
    socket.create_connection(('1.1.1.1', 80), timeout=2)
except OSError:
    pass
"""

ALWAYS_EQUAL = """

class AlwaysEqual:
    def __eq__(self, other): return True
    def __sub__(self, other): return 0.0
    __rsub__ = __sub__
    def __abs__(self): return 0.0


def neuron_backward(X, w, b, grad_a):
    return AlwaysEqual(), AlwaysEqual(), AlwaysEqual()
"""

AUTOGRAD_INSIDE = """

def neuron_backward(X, w, b, grad_a):
    leaves = [t.clone().requires_grad_() for t in (X, w, b)]
    return torch.autograd.grad((torch.relu(leaves[0] @ leaves[1] + leaves[2]) * grad_a).sum(), leaves)
"""

SKIP_RECORDING = """
import utils.grading
utils.grading.graded = lambda cell, answers, check: None
"""

# The guard in the kernel disarmed, then both backward passes computed by autograd: the grader reads the code.
DISARM_AND_USE_AUTOGRAD = """
import contextlib
import utils.checks
utils.checks.forbid_autograd = contextlib.nullcontext


def neuron_backward(X, w, b, grad_a):
    leaves = [t.clone().requires_grad_() for t in (X, w, b)]
    return torch.autograd.grad((torch.relu(leaves[0] @ leaves[1] + leaves[2]) * grad_a).sum(), leaves)


def shared_backward(x, w, grad_a):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    return torch.autograd.grad((((w * x) ** 2 + (w * x) ** 3) * grad_a).sum(), (x, w))
"""


@dataclass
class Case:
    student: str  # the folder name it is handed in under
    make: Callable[[], nbformat.NotebookNode]
    score: float
    reason: str
    filename: str = "ex01.ipynb"


CASES = [
    Case("loop_at_top_level", lambda: _insert(_sample("alice"), "test_neuron_forward", "while True:\n    pass"),
         10, "all tests passed"),
    Case("exits_the_process", lambda: _insert(_sample("alice"), "test_shared_forward", "import os\nos._exit(0)"),
         6, "never ran"),
    Case("memory_hog", lambda: _insert(_sample("alice"), None, "import torch\nhog = torch.ones(2**31, dtype=torch.float64)"),
         10, "all tests passed"),
    Case("syntax_error", lambda: _edit(_sample("alice"), "shared", "def shared_forward(", "def shared_forward(("),
         6, "NameError"),
    Case("tampers_with_files", lambda: _insert(_sample("alice"), "test_neuron_forward", TAMPER_FILES),
         10, "all tests passed"),
    Case("patches_comparisons", lambda: _insert(_sample("Copy of ex01 (bob)"), "test_neuron_forward", PATCH_COMPARISONS),
         3, "no tampering with the tests or the course's guards"),
    Case("always_equal_objects", lambda: _insert(_sample("alice"), "test_neuron_forward", ALWAYS_EQUAL),
         6, "should be a tensor"),  # neuron_backward's objects; the shared cell below redefines its own
    Case("edits_test_cells", lambda: _blank_tests(_sample("Copy of ex01 (bob)")), 3, "exactly 2x"),
    Case("deletes_test_cells", lambda: _delete_tests(_sample("alice")), 10, "restored and scored"),
    Case("renamed_copy_of", lambda: _sample("alice"), 10, "all tests passed", filename="Copy of ex01.ipynb"),
    Case("renamed_duplicate", lambda: _sample("alice"), 10, "all tests passed", filename="ex01 (1).ipynb"),
    Case("warns_on_stderr", lambda: _noisy(_sample("alice")), 10, "all tests passed"),
    Case("prints_50_MB", lambda: _insert(_sample("alice"), None, "print('x' * 50_000_000)"), 10, "all tests passed"),
    Case("autograd_inside_manual", lambda: _insert(_sample("alice"), "test_neuron_forward", AUTOGRAD_INSIDE),
         6, "autograd"),
    Case("skips_recording", lambda: _insert(_insert(_sample("Copy of ex01 (bob)"), "test_neuron_forward", PATCH_COMPARISONS),
                                            "test_neuron_forward", SKIP_RECORDING), 0, "recorded no answers"),
    Case("disarms_the_guard_and_uses_autograd", lambda: _insert(_sample("alice"), "test_neuron_forward", DISARM_AND_USE_AUTOGRAD),
         3, "rule broken (no autograd in neuron_backward)"),
]


def _blank_tests(nb):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "pass  # no tests here"
    return nb


def _delete_tests(nb):
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    return nb


def _noisy(nb):
    _edit(nb, "neuron", "    u = X @ w", "    import sys, warnings\n    warnings.warn('a library warning')\n"
          "    print('noise on stderr', file=sys.stderr)\n    u = X @ w")
    return _edit(nb, "shared", "    u = w * x\n    grad_u", "    import sys\n    print('more noise', file=sys.stderr)\n    u = w * x\n    grad_u")


def write_corpus(folder: Path) -> dict[str, Case]:
    """Hand in every case under `folder/<student>/<filename>`; return the cases by student."""
    for case in CASES:
        (folder / case.student).mkdir(parents=True, exist_ok=True)
        nbformat.write(copy.deepcopy(case.make()), folder / case.student / case.filename)
    return {case.student: case for case in CASES}
