"""Submissions that try to carry hidden tests out to the student, for every exercise.

Each spy starts from the exercise's correct sample (alice) and adds cells that look for the hidden tests
in every way a student's process can (its memory and frames, IPython's events, a tracer that reads the
caller's source from linecache) and smuggle them out in every form it can (printed, base64, reversed,
hex, inside an exception, a display output, stdout captured early and printed late, a file read by a
later cell). `leaked` finds a hidden-test line in any of those forms.
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import re
from pathlib import Path

import nbformat

SAMPLES = Path(__file__).resolve().parents[1] / "autograders" / "samples"

EMIT = '''
import base64 as _b64
_stolen = []
def _emit(text, label="LEAK", display_it=False):
    text = str(text)
    print(label, text)
    print(label + "-B64", _b64.b64encode(text.encode()).decode())
    print(label + "-REV", text[::-1])
    print(label + "-HEX", text.encode().hex())
    if display_it:
        from IPython.display import HTML, display
        display(HTML("<pre>" + text + "</pre>"))
'''

# The process's memory and frames, as a fork would give them: every dict or string that holds test code.
MEMORY = '''
import gc, sys
found = []
for obj in gc.get_objects():
    try:
        if isinstance(obj, dict) and any(isinstance(v, (list, str)) and ("graded(" in str(v) or "HIDDEN" in str(v)) for v in list(obj.values())[:100]):
            found.append(repr(obj)[:200000])
    except Exception:
        pass
frame = sys._getframe()
while frame is not None:
    found.append(repr(frame.f_locals)[:20000])
    frame = frame.f_back
_emit("\\n".join(found), "MEMORY")
'''

# IPython's events: every cell printed as it arrives and after it ran.
EVENTS_PRINT = '''
def _print_cell(info=None, *args):
    _emit(getattr(info, "raw_cell", "") or getattr(getattr(info, "info", None), "raw_cell", ""), "CELL")
get_ipython().events.register("pre_run_cell", _print_cell)
get_ipython().events.register("post_run_cell", _print_cell)
'''

# ... raised as an exception, plainly and in base64.
EVENTS_RAISE = '''
import base64
def _raise_cell(info):
    raise RuntimeError("EXC " + info.raw_cell + " " + base64.b64encode(info.raw_cell.encode()).decode())
get_ipython().events.register("pre_run_cell", _raise_cell)
'''

# ... shown as a display output.
EVENTS_DISPLAY = '''
def _display_cell(info):
    from IPython.display import HTML, display
    display(HTML("<pre>" + info.raw_cell + "</pre>"))
get_ipython().events.register("pre_run_cell", _display_cell)
'''

# ... kept in memory, printed by the last cell (the output captured now, shown later).
EVENTS_KEEP = '''
import io, sys
_captured = io.StringIO()
def _keep_cell(info):
    _stolen.append(info.raw_cell)
    _captured.write(info.raw_cell)
get_ipython().events.register("pre_run_cell", _keep_cell)
'''

# ... written to files, read back by the last cell.
EVENTS_FILE = '''
def _file_cell(info):
    for name in ("leak.txt", "/tmp/leak.txt"):
        try:
            with open(name, "a") as f:
                f.write(info.raw_cell + "\\n")
        except OSError:
            pass
get_ipython().events.register("pre_run_cell", _file_cell)
'''

# A tracer: when a function is called from code that looks like a test, raise that code (from linecache).
TRACE = '''
import sys, linecache, base64
def _tracer(frame, event, arg):
    if event == "call" and frame.f_back is not None:
        caller = frame.f_back.f_code
        source = "".join(linecache.getlines(caller.co_filename)) + repr(caller.co_consts)
        if "def " + "answers" in source:  # a hidden test's code (spelt so as not to match this cell)
            raise ValueError("TRACED " + source + base64.b64encode(source.encode()).decode())
    return None
sys.settrace(_tracer)
'''

LAST_CELL = '''
import sys
sys.settrace(None)
_emit("\\n".join(_stolen), "KEPT")
try:
    _emit(_captured.getvalue(), "CAPTURED")
except NameError:
    pass
for name in ("leak.txt", "/tmp/leak.txt"):
    try:
        _emit(open(name).read(), "FILE")
    except OSError:
        pass
import gc
_emit("\\n".join(repr(o)[:5000] for o in gc.get_objects() if isinstance(o, str) and "graded(" in o), "MEMORY-LATE")
'''

ATTACKS = {
    "memory": MEMORY,
    "events_print": EVENTS_PRINT,
    "events_raise": EVENTS_RAISE,
    "events_display": EVENTS_DISPLAY,
    "events_keep": EVENTS_KEEP,
    "events_file": EVENTS_FILE,
    "trace": TRACE,
}


def _setup_index(notebook) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")


def spy_notebook(exercise: str, attacks: tuple[str, ...] = tuple(ATTACKS)) -> nbformat.NotebookNode:
    """The exercise's correct sample with the spying cells added after its setup cell, and one at the end."""
    notebook = copy.deepcopy(nbformat.read(SAMPLES / exercise / "alice" / f"{exercise}.ipynb", as_version=4))
    at = _setup_index(notebook) + 1
    for source in (EMIT, *(ATTACKS[name] for name in attacks)):
        notebook.cells.insert(at, nbformat.v4.new_code_cell(source))
        at += 1
    notebook.cells.append(nbformat.v4.new_code_cell(LAST_CELL))
    return notebook


def _decodings(text: str) -> list[str]:
    """The text, and every form a spy may have turned a hidden line into."""
    forms = [text, text[::-1], html.unescape(text), html.unescape(text)[::-1]]
    for token in re.findall(r"[A-Za-z0-9+/=]{24,}", text):
        try:
            forms.append(base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            pass
    for token in re.findall(r"(?:[0-9a-f]{2}){16,}", text):
        forms.append(bytes.fromhex(token).decode("utf-8", "replace"))
    for token in re.findall(r"(?:z[0-9a-f]{2}\.){8,}z[0-9a-f]{2}", text):  # bytes spelled as words: z69.z6d...
        forms.append(bytes.fromhex(token.replace("z", "").replace(".", "")).decode("utf-8", "replace"))
    return forms


def leaked(secrets: list[str], text: str) -> list[str]:
    """The hidden-test lines found in `text`, plainly or decoded."""
    forms = _decodings(text)
    return [line for line in secrets if any(line in form for form in forms)]
