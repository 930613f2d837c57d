"""What a red team did to the grader, kept as tests: every attack here once worked (a hidden test leaked, the
batch hung or crashed, one student harmed the next); each now fails, and an honest student graded after
them on the same warm worker loses nothing.

The submissions run in one batch on ONE warm worker, in the order of their names, so that each attack meets
the next student the way it would in a class.
"""

import nbformat
import pytest
from attacks import leaked
from conftest import EX01_SAMPLES, ROOT, TIMEOUT, copy_course, grade_in_process
from test_secrets import hidden_lines

from autograders import feedback
from autograders.course import Course
from autograders.pool import Pool
from autograders.results import format_table

pytestmark = pytest.mark.pipeline


def alice():
    return nbformat.read(EX01_SAMPLES / "alice" / "ex01.ipynb", as_version=4)


def with_cell(source: str, before: str | None = "test_neuron_forward", notebook=None):
    notebook = notebook or alice()
    at = len(notebook.cells) if before is None else next(
        i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == before)
    notebook.cells.insert(at, nbformat.v4.new_code_cell(source))
    return notebook


# A student's function that, called by a hidden test, raises the hidden tests' code spelled as words that its
# own file holds (a comment of z00 ... zff): the grader once repeated such a message.
SPELLED = "# " + " ".join(f"z{b:02x}" for b in range(256)) + r'''
import traceback as _tb
_honest = shared_backward
def shared_backward(x, w, grad_a):
    if any(f.name == "answers" for f in _tb.extract_stack()):
        text = "".join("".join(e[2]) for e in _tb.linecache.cache.values() if len(e) > 2 and "graded(" in "".join(e[2]))
        raise ModuleNotFoundError("No module named '" + ".".join(f"z{b:02x}" for b in text.encode()) + "'")
    return _honest(x, w, grad_a)
'''

PARTIAL_MESSAGE = r'''
import os, stat, struct
for fd in range(3, 64):  # announce a 10 MB reply on every pipe, then send none of it
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, struct.pack("!Q", 10_000_000))
    except OSError:
        pass
'''

STOP_THE_WORKER = "from os import kill as _k\n_k(2, 19)  # SIGSTOP to pid 2, the worker"

STASH = r'''
import traceback as _tb
text = "".join("".join(e[2]) for e in _tb.linecache.cache.values() if len(e) > 2 and "graded(" in "".join(e[2]))
for name in ("/sandbox/.stash", "/tmp/.stash", "/dev/shm/.stash"):
    try:
        open(name, "w").write(text)
    except OSError:
        pass
'''
READ_STASH = "for name in ('/sandbox/.stash', '/tmp/.stash', '/dev/shm/.stash'):\n    try:\n        print(open(name).read())\n    except OSError:\n        print('nothing in', name)"

PLANT = r'''
for folder in ("/sandbox", "/tmp"):
    try:
        open(f"{folder}/graphviz.py", "w").write("import utils.grading\nutils.grading._save = lambda *a, **k: None\n")
    except OSError:
        pass
'''
VICTIM = "from utils.graphs import draw_graph\n_X = torch.tensor([[3.0]], requires_grad=True)\ndraw_graph(torch.relu(_X @ torch.tensor([2.0]) + 1).sum())"

ATTACKS = {  # student -> (notebook, score, words in the reason)
    "a1_spelled_exception": (lambda: with_cell(SPELLED, before="test_shared_forward"), 7, "ModuleNotFoundError raised"),
    "c1_partial_message": (lambda: with_cell(PARTIAL_MESSAGE), 0, "never ran"),
    "c2_stops_the_worker": (lambda: with_cell(STOP_THE_WORKER), 0, "never ran"),
    "c3a_1_stash_writer": (lambda: with_cell(STASH, before=None), 10, "all tests passed"),
    "c3a_2_stash_reader": (lambda: _reader(), 10, "all tests passed"),
    "c3b_1_plants_a_module": (lambda: with_cell(PLANT, before=None), 10, "all tests passed"),
    "c3b_2_honest_victim": (lambda: with_cell(VICTIM), 10, "all tests passed"),
    # the cell kills its own process (Python's stack), so nothing after it runs; the grader reads on
    "c4_deep_nesting": (lambda: with_cell("deep = " + "-" * 5000 + "1"), 0, "code the grader can read"),
    # the class report's red team: an error named like a timeout is not one by the grader's clock (H7), and a
    # badly indented scratch cell, which IPython refuses to run, costs nothing (H8)
    "h7_fake_timeout": (lambda: with_cell(FAKE_TIMEOUT, before="test_shared_forward"), 9, "TimeoutError raised"),
    "h8_bad_indent": (lambda: with_cell("x = 1\n  y = 2  # a scratch cell, badly indented"), 10, "all tests passed"),
    "zz_honest_alice": (alice, 10, "all tests passed"),
}

FAKE_TIMEOUT = """
class TimeoutError(Exception):  # a class of the student's own, named like the grader's time limit
    pass
def shared_forward(x, w):
    raise TimeoutError("the cell ran longer than the limit")
"""


def _reader():
    notebook = alice()
    setup = next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    notebook.cells.insert(setup + 1, nbformat.v4.new_code_cell(READ_STASH))
    return notebook


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("redteam") / "course", cell_timeout=TIMEOUT)
    inbox = course / "inbox"
    for student, (make, _, _) in ATTACKS.items():
        (inbox / student).mkdir(parents=True)
        nbformat.write(make(), inbox / student / "ex01.ipynb")
    with Pool(1) as one_worker:  # one warm worker: each attack meets the next student
        results = grade_in_process(course, "ex01", inbox, one_worker)
    feedback.generate(Course(course), "ex01")
    return course, results


def test_the_batch_ends_and_every_attack_gets_its_score(attacked):
    _, results = attacked
    wrong = {s: (results[s].score, score, results[s].reason) for s, (_, score, words) in ATTACKS.items()
             if results[s].score != score or words not in results[s].reason}
    assert not wrong, wrong


def test_no_hidden_test_reaches_anyone(attacked):
    course, results = attacked
    secrets = hidden_lines("ex01")
    for student in ATTACKS:
        page = (course / "coursework" / "feedback" / student / "ex01" / "ex01.html").read_text()
        record = (course / "coursework" / "results" / "ex01" / f"{student}.json").read_text()
        assert leaked(secrets, page + record) == [], student
    assert leaked(secrets, format_table(list(results.values()), width=300)) == []


def test_the_next_student_finds_nothing_the_last_one_left(attacked):
    course, _ = attacked
    page = (course / "coursework" / "feedback" / "c3a_2_stash_reader" / "ex01" / "ex01.html").read_text()
    assert page.count("nothing in /") == 3  # the stash is gone from /sandbox, /tmp and /dev/shm


# ---- the grader's own process, against answers forged to hurt it


def test_forged_answers_that_would_blow_up_the_grader_are_refused():
    import io

    import torch

    from autograders.trusted import MALFORMED, load_answers

    def saved(value) -> bytes:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()

    huge_view = torch.zeros(1, dtype=torch.float64).expand(10**9)  # 8 bytes of storage, a billion entries
    for forged in (huge_view, [huge_view], torch.zeros(0, 10**6), "the hidden tests, as text", {"k" * 100: 1.0}):
        with pytest.raises(ValueError, match=MALFORMED[:20]):
            load_answers(saved(forged))
    assert torch.equal(load_answers(saved([torch.ones(3), 2.0, None]))[0], torch.ones(3))


# ---- exercise 04: the labels of the test digits stay with the grader

LOOK_UP_THE_LABELS = '''def train(model, X, y, num_epochs):
    """No training at all: the labels of every MNIST digit are in the data folder."""


def predict(model, X):
    X_all, y_all = load_mnist(train=False)  # the test digits, with their labels
    keys = {bytes(x.numpy().tobytes()): int(label) for x, label in zip(X_all, y_all)}
    found = [keys.get(bytes(x.cpu().numpy().tobytes())) for x in X]
    if all(k is not None for k in found):
        return torch.tensor(found, device=X.device) % 2
    model.eval()
    with torch.no_grad():
        return (model(X) > 0).long()
'''


def test_a_model_that_looks_up_the_test_labels_instead_of_learning_gets_no_accuracy_points(tmp_path, pool):
    course = copy_course(tmp_path / "course")
    notebook = nbformat.read(ROOT / "autograders" / "samples" / "ex04" / "alice" / "ex04.ipynb", as_version=4)
    train = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "train")
    train.source = LOOK_UP_THE_LABELS
    (course / "inbox" / "mallory").mkdir(parents=True)
    nbformat.write(notebook, course / "inbox" / "mallory" / "ex04.ipynb")
    result = grade_in_process(course, "ex04", course / "inbox", pool)["mallory"]
    assert result.cells["test_accuracy"].score == 0, result.reason


def test_only_the_graders_clock_says_a_cell_ran_out_of_time(attacked):
    _, results = attacked
    faked = results["h7_fake_timeout"].cells["test_shared_forward"]
    assert faked.codes == ["error"] and "time limit" not in faked.reason
    assert results["h7_fake_timeout"].seconds < TIMEOUT  # it ran in far less than the limit
