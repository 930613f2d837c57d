"""autograders.rules: each rule shown tripping and not tripping, on code read with `ast` (never run).

Every solution passes clean, and every sample breaks exactly the rules its mistake breaks.
"""

from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from autograders.collect import student_id
from autograders.course import Course, Exercise, TestCell
from autograders.rules import check

SETUP = "import torch\nimport utils.checks\nfrom utils.checks import assert_grads_match, forbid_autograd\n%matplotlib inline"
NO_AUTOGRAD = {"test_backward": [{"rule": "no-autograd", "in": ["backward"]}]}
NO_TORCH = {"test_engine": [{"rule": "no-torch", "in": ["Value"]}]}
NO_LSE = {"test_lse": [{"rule": "no-call", "names": ["logsumexp", "softmax", "log_softmax"], "in": ["lse"]}]}


def report(rules: dict, *student: str, locked: tuple[str, ...] = (), hidden: str = ""):
    """The rules check on a notebook: a locked setup cell, then the student's cells, then the test cells
    (with `hidden` as each one's hidden tests)."""
    cells = [_cell(SETUP, locked=True)] + [_cell(code) for code in student] + [_cell(code, locked=True) for code in locked]
    for grade_id in rules:
        test = _cell(f"pass\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS\n" if hidden else "pass", locked=True)
        test.metadata["nbgrader"].update(grade=True, grade_id=grade_id, points=1)
        cells.append(test)
    exercise = Exercise("ex", Path("ex.ipynb"), nbformat.v4.new_notebook(cells=cells),
                        [TestCell(g, 1, hidden, tuple(r)) for g, r in rules.items()])
    return check(exercise, exercise.notebook)


def _cell(source: str, locked: bool = False):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "solution": not locked, "locked": locked, "grade_id": None, "schema_version": 3}
    return cell


def broken(rules, *student, **kw) -> list[str]:
    return [v.code for v in report(rules, *student, **kw).violations]


def flagged(rules, *student) -> list[str]:
    return [f.why for f in report(rules, *student).flags]


# ---- no-autograd


@pytest.mark.parametrize("code", [
    "def backward(x):\n    return torch.autograd.grad(x.sum(), x)",
    "def backward(x):\n    x.sum().backward()\n    return x.grad",
    "import torch.autograd as ag\ndef backward(x):\n    return ag.grad(x.sum(), x)",
    "from torch import autograd\ndef backward(x):\n    return autograd.grad(x.sum(), x)",
    "from torch.autograd import grad as g\ndef backward(x):\n    return g(x.sum(), x)",
    "T = torch\ndef backward(x):\n    return T.autograd.grad(x.sum(), x)",
    "def backward(x):\n    return torch.func.jacrev(torch.sin)(x)",
    "def backward(x):\n    return torch.func.jvp(torch.sin, (x,), (torch.ones_like(x),))[1]",
    "def backward(x):\n    return torch.autograd.functional.jacobian(torch.sin, x, strategy='forward-mode')",
    "def backward(x):\n    import torch.autograd.forward_ad as fwAD\n    return fwAD.make_dual(x, x)",
    "def backward(x):\n    return getattr(torch, 'autograd').grad(x.sum(), x)",
    "from torch.func import *\ndef backward(x):\n    return jacfwd(torch.sin)(x)",
])
def test_no_autograd_trips_on_autograd_however_it_is_named(code):
    assert broken(NO_AUTOGRAD, code), code


def test_no_autograd_follows_the_notebooks_own_helpers_and_rebindings():
    helper = "def helper(x):\n    return torch.autograd.grad(x.sum(), x)[0]\n\ndef backward(x):\n    return helper(x)"
    assert broken(NO_AUTOGRAD, helper) == ["return torch.autograd.grad(x.sum(), x)[0]"]
    decorated = "def wrap(f):\n    return lambda x: torch.autograd.grad(x.sum(), x)\n\n@wrap\ndef backward(x):\n    return x"
    assert broken(NO_AUTOGRAD, decorated)
    rebound = ("def backward(x):\n    return 2 * x", "backward = lambda x: torch.autograd.grad(x.sum(), x)")
    assert broken(NO_AUTOGRAD, *rebound), "a later cell rebinding the guarded name"
    through_a_table = ("TOOLS = {}", "TOOLS['g'] = torch.autograd.grad", "def backward(x):\n    return TOOLS['g'](x.sum(), x)")
    assert broken(NO_AUTOGRAD, *through_a_table)


@pytest.mark.parametrize("code", [
    "def backward(x):\n    # not torch.autograd.grad: by hand\n    return 2 * x",
    "def backward(x):\n    '''No x.backward() here; torch.autograd.grad would be cheating.'''\n    return 2 * x",
    "def backward(x):\n    grad = 2 * x  # a local name, not autograd\n    with torch.no_grad():\n        return grad.clone()",
])
def test_no_autograd_ignores_comments_strings_and_plain_names(code):
    assert broken(NO_AUTOGRAD, code) == []


def test_autograd_elsewhere_in_the_notebook_is_the_students_business():
    scratch = "x = torch.ones(3, requires_grad=True)\n(x ** 2).sum().backward()\nprint(x.grad)"
    assert broken(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", scratch) == []


def test_the_instructors_cells_are_never_read_as_the_students():
    hidden = "def backward_reference(x):\n    return torch.autograd.grad(x.sum(), x)"
    assert broken(NO_AUTOGRAD, "def backward(x):\n    return backward_reference(x)", locked=(hidden,)) == []


# ---- no-torch and no-call


def test_no_torch_trips_on_torch_and_its_aliases_only():
    assert broken(NO_TORCH, "class Value:\n    def tanh(self):\n        return Value(torch.tanh(torch.tensor(self.data)).item())")
    assert broken(NO_TORCH, "import torch as t\nclass Value:\n    def exp(self):\n        return t.exp(self.data)")
    assert broken(NO_TORCH, "import math\nclass Value:\n    def tanh(self):\n        return Value(math.tanh(self.data))") == []


@pytest.mark.parametrize("code", [
    "def lse(x):\n    return torch.logsumexp(x, -1)",
    "def lse(x):\n    return x.logsumexp(-1)",
    "import torch.nn.functional as F\ndef lse(x):\n    return -F.log_softmax(x, -1)[..., 0] + x[..., 0]",
    "from torch import logsumexp as fast\ndef lse(x):\n    return fast(x, -1)",
    "def lse(x):\n    return torch.special.logsumexp(x, -1)",
])
def test_no_call_trips_on_the_named_functions_however_reached(code):
    assert broken(NO_LSE, code), code


def test_no_call_passes_an_own_implementation():
    own = "def lse(x):\n    m = x.max(-1, keepdim=True).values\n    return m.squeeze(-1) + (x - m).exp().sum(-1).log()"
    assert broken(NO_LSE, own) == []


NO_DEEPER = {"test_order": [{"rule": "no-call", "names": ["setrecursionlimit"], "in": ["Value"]}]}  # exercise 06


@pytest.mark.parametrize("code", [
    "import sys\nclass Value:\n    def topological_order(self):\n        sys.setrecursionlimit(10**5)",
    "class Value:\n    def topological_order(self):\n        import sys as s\n        s.setrecursionlimit(10**5)",
    "from sys import setrecursionlimit as deeper\nclass Value:\n    def backward(self):\n        deeper(10**5)",
])
def test_raising_the_recursion_limit_inside_the_engine_trips_exercise_06s_rule(code):
    assert broken(NO_DEEPER, code), code


def test_an_iterative_sort_and_the_limit_outside_the_engine_pass():
    iterative = "class Value:\n    def topological_order(self):\n        stack = [self]\n        while stack:\n            stack.pop()"
    assert broken(NO_DEEPER, iterative) == []
    # raised for the whole notebook: no break of the rule (the tests run the engine at the default limit anyway)
    assert broken(NO_DEEPER, "import sys\nsys.setrecursionlimit(10**5)", iterative) == []


# ---- tampering with guards, and what needs a person


@pytest.mark.parametrize("code", [
    "import contextlib\nutils.checks.forbid_autograd = contextlib.nullcontext",
    "c = utils.checks\nc.forbid_autograd = None",
    "from utils import checks\nchecks.assert_grads_match = print",
    "import torch.autograd as ag\nag._engine_run_backward = print",
    "setattr(torch, 'allclose', lambda *a, **k: True)",
    "import sys\nsys.modules['utils.checks'] = None",
    "import sys\nsys.modules.pop('utils.checks')",
    "import sys\nsys.settrace(lambda *a: None)",
    "get_ipython().events.register('pre_run_cell', print)",
    "ip = get_ipython()\nip.input_transformers_post.append(str)",
    "import builtins\nbuiltins.print = len",
    "import numpy as np\nnp.allclose = lambda *a, **k: True",
    "torch.Tensor.__eq__ = lambda self, other: True",
])
def test_disarming_a_guard_breaks_every_rule_of_the_exercise(code):
    found = report(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", code)
    assert [v.guards for v in found.violations] == [("test_backward",)], code
    assert "no tampering" in found.violations[0].rule


def test_settings_a_training_loop_may_change_are_not_tampering():
    fine = "torch.backends.cudnn.benchmark = True\ntorch.manual_seed(0)\nimport sys\nsys.path.insert(0, '.')"
    assert report(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", fine).violations == []


def test_tampering_in_an_exercise_without_rules_needs_review():
    found = report({"test_model": []}, "torch.allclose = lambda *a, **k: True")
    assert found.violations == [] and [f.why for f in found.flags] == ["the code changes torch"]


@pytest.mark.parametrize("code, why", [
    ("exec('x = 1')", "exec() runs code the grader cannot read"),
    ("y = eval('1 + 1')", "eval() runs code the grader cannot read"),
    ("m = __import__('tor' + 'ch')", "__import__() runs code the grader cannot read"),
    ("import importlib\nm = importlib.import_module('torch')", "imports importlib"),
    ("name = 'auto' + 'grad'\nag = getattr(torch, name)", "an attribute reached by a computed name"),
    ("import sys\nframe = sys._getframe(1)", "uses ._getframe"),
    ("import gc\nobjects = gc.get_objects()", "imports gc"),
    ("import threading", "imports threading"),
    ("class Sneaky:\n    def __del__(self):\n        pass", "defines __del__, which runs whenever Python decides"),
    ("!ls /", "a shell command"),
])
def test_what_ast_cannot_decide_is_flagged_for_review(code, why):
    assert flagged(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", code) == [why]


def test_benign_magics_and_a_syntax_error_flag_nothing():
    assert flagged(NO_AUTOGRAD, "%time y = 1", "def broken(:\n    pass") == []


def test_a_flag_is_stable_for_the_same_line():
    first = report(NO_AUTOGRAD, "exec('1')").flags[0]
    again = report(NO_AUTOGRAD, "x = 1", "exec('1')").flags[0]
    assert first.id != "" and first.code == "exec('1')" and first.line == 1 and first.why == again.why


# ---- the course's own notebooks


@pytest.mark.parametrize("exercise", sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()))
def test_every_solution_is_clean_and_every_sample_breaks_only_what_it_means_to(exercise):
    source = Course(ROOT).exercise(exercise)
    found = check(source, source.notebook)
    assert found.violations == [] and found.flags == [], (exercise, found)
    intended = {("ex03", "frank"): "no autograd in least_squares_grad"}
    samples = ROOT / "autograders" / "samples" / exercise
    for sample in sorted(samples.rglob("*.ipynb")):
        student = student_id(sample, samples, exercise)
        found = check(source, nbformat.read(sample, as_version=4))
        want = intended.get((exercise, student))
        assert [v.rule for v in found.violations][:1] == ([want] if want else []), (sample, found.violations)
        assert found.flags == [], (sample, found.flags)


# ---- what a red team tried (the attacks are kept here as tests)

NO_LSE_IN_CLASS = {"test_lse": [{"rule": "no-call", "names": ["logsumexp", "softmax", "log_softmax"], "in": ["LogSumExp"]}]}


@pytest.mark.parametrize("code", [
    "def backward(x):\n    return torch._C._ImperativeEngine().run_backward((x.sum(),), (None,), False, False, (x,), False, False)",
    "def backward(x):\n    return torch._make_dual(x, x, level=0)",
    "def backward(x):\n    return torch.ops.aten.sum(x)",
    "import operator\ndef backward(x):\n    return operator.attrgetter('grad')(x)",
    "from utils.expressions import torch as T\ndef backward(x):\n    return T.autograd.grad(x.sum(), x)",
])
def test_no_autograd_sees_private_entry_points_strings_and_reexports(code):
    assert broken(NO_AUTOGRAD, code), code


@pytest.mark.parametrize("code", [
    "class LogSumExp:\n    pass\nimport __main__\n__main__.LogSumExp = torch.logsumexp",
    "def _cheat(x):\n    return torch.logsumexp(x, -1)\nfrom __main__ import _cheat as LogSumExp",
    "_ = [(LogSumExp := lambda x: torch.logsumexp(x, -1))]",
    "match (lambda x: torch.logsumexp(x, -1)):\n    case LogSumExp:\n        pass",
    "import operator\nclass LogSumExp:\n    apply = staticmethod(lambda x: operator.attrgetter('logsumexp')(torch)(x, -1))",
    "class LogSumExp:\n    apply = staticmethod(lambda x: torch._softmax(x, -1, False))",
])
def test_rebinding_the_named_code_anywhere_is_followed(code):
    assert report(NO_LSE_IN_CLASS, code).violations, code


@pytest.mark.parametrize("code", [
    "%%time\nclass LogSumExp:\n    apply = staticmethod(lambda x: torch.logsumexp(x, -1))",
    "%time LogSumExp = type('LogSumExp', (), {'apply': staticmethod(lambda x: torch.logsumexp(x, -1))})",
    "%timeit -n 1 -r 1 LogSumExp = torch.logsumexp",
])
def test_code_inside_time_magics_is_read(code):
    assert report(NO_LSE_IN_CLASS, code).violations, code


@pytest.mark.parametrize("code", [
    "%config IPCompleter.greedy = globals().update(LogSumExp=1)",
    "[utils.grading][0].graded = lambda *a, **k: None",
    "import utils.grading as g\n(lambda: g)().graded = print",
    "from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.instance().events.register('post_run_cell', print)",
    "import torch\nanswers_so_far = cases()",
])
def test_reaching_for_the_tests_or_their_machinery_is_tampering(code):
    found = report(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", code, hidden="def cases():\n    yield 1")
    assert found.violations and "tampering" in found.violations[0].rule, (code, found)


def test_a_method_of_the_notebooks_own_named_like_a_forbidden_one_needs_review_not_zero():
    layer = ("class Layer:\n    def backward(self, g):\n        return 2 * g\n\n"
             "def backward(x):\n    return Layer().backward(x)")
    found = report(NO_AUTOGRAD, layer)
    assert found.violations == [] and [f.why[:12] for f in found.flags] == ["`.backward` "]
    own_softmax = ("class LogSumExp:\n    @staticmethod\n    def softmax(x, lse):\n        return (x - lse).exp()\n"
                   "    def apply(self, x):\n        return LogSumExp.softmax(x, 0)")
    assert report(NO_LSE_IN_CLASS, own_softmax).violations == []


def test_autograd_outside_the_named_code_needs_review():
    found = report(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", "check = torch.autograd.grad")
    assert found.violations == [] and "outside the code the rule names" in found.flags[0].why


def test_unreadable_code_breaks_the_rules_instead_of_the_grader():
    found = report(NO_AUTOGRAD, "def backward(x):\n    return 2 * x", "deep = " + "-" * 5000 + "1")
    assert [v.rule[:24] for v in found.violations] == ["code the grader can read"]


def test_escape_codes_in_a_students_line_are_written_out():
    found = report(NO_AUTOGRAD, "import gc  # \x1b[2K\x1b[1Aall fine here")
    assert "\x1b" not in found.flags[0].code and "\\x1b[2K" in found.flags[0].code


def test_a_badly_indented_scratch_cell_did_not_run_and_costs_nothing():
    """IPython refuses a badly indented cell before it runs (its own transformer raises IndentationError):
    the rules check has nothing to read there, and the rest of the notebook is judged as usual."""
    assert flagged(NO_AUTOGRAD, "x = 1\n  y = 2", "def f():\nreturn 1", "if True:\n    x = 1\n   y = 2") == []
    assert flagged(NO_AUTOGRAD, "  print(1)", "torch.autograd.grad(y, x)")  # the readable cells are still read
