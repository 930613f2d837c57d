"""Submissions that try to carry hidden tests out to the student, for every exercise.

Each spy starts from the exercise's correct sample (alice) and adds cells that look for the hidden tests
in every way a student's process can (its memory, its frames, IPython's events, linecache, the caller's
frame of a function a test calls) and smuggle them out in every form it can (printed, base64, reversed,
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
def _emit(text, label="LEAK"):
    text = str(text)
    print(label, text)
    print(label + "-B64", _b64.b64encode(text.encode()).decode())
    print(label + "-REV", text[::-1])
    print(label + "-HEX", text.encode().hex())
    try:
        from IPython.display import HTML, display
        display(HTML("<pre>" + text + "</pre>"))
    except Exception:
        pass
    try:
        open("/tmp/leak.txt", "a").write(text + "\\n")
        open("leak.txt", "a").write(text + "\\n")
    except Exception:
        pass
'''

# 1. The worker's memory, as a fork would give it: every string and dict that looks like a notebook's cells.
WALK_MEMORY = '''
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

# 2. IPython's events: every cell as it arrives, and again after it ran; the same raised as an exception.
EVENTS = '''
def _spy(info=None, *args):
    import sys, linecache
    source = getattr(info, "raw_cell", "") or getattr(getattr(info, "info", None), "raw_cell", "")
    _emit(source, "CELL")
    for name in list(linecache.cache):
        _emit("".join(linecache.cache[name][2]), "LINECACHE")
ip = get_ipython()
ip.events.register("pre_run_cell", _spy)
ip.events.register("post_run_cell", _spy)
def _raise_it(info):
    raise RuntimeError("EXC " + info.raw_cell + " " + base64.b64encode(info.raw_cell.encode()).decode())
import base64
ip.events.register("pre_run_cell", _raise_it)
'''

# 3. Stdout captured from here on, printed by the last cell; a tracer that raises the caller's source.
CAPTURE_AND_TRACE = '''
import io, sys, linecache, base64
_real_stdout, _captured = sys.stdout, io.StringIO()
class _Both:
    def write(self, text):
        _captured.write(text); return _real_stdout.write(text)
    def flush(self):
        pass
sys.stdout = _Both()
def _tracer(frame, event, arg):
    if event == "call" and frame.f_back is not None:
        caller = frame.f_back.f_code
        source = "".join(linecache.getlines(caller.co_filename)) + repr(caller.co_consts)
        if "graded" in source or "cases" in source:
            raise ValueError("TRACED " + source + base64.b64encode(source.encode()).decode())
    return None
sys.setprofile(lambda *a: None)
sys.settrace(_tracer)
'''

LAST_CELL = '''
import sys
try:
    _emit(_captured.getvalue(), "CAPTURED")
except Exception:
    pass
for name in ("leak.txt", "/tmp/leak.txt"):
    try:
        _emit(open(name).read(), "FILE")
    except Exception:
        pass
'''


def _setup_index(notebook) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")


def spy_notebook(exercise: str) -> nbformat.NotebookNode:
    """The exercise's correct sample with every spying cell added after its setup cell, and one at the end."""
    notebook = nbformat.read(SAMPLES / exercise / "alice" / f"{exercise}.ipynb", as_version=4)
    notebook = copy.deepcopy(notebook)
    at = _setup_index(notebook) + 1
    for source in (EMIT, WALK_MEMORY, EVENTS, CAPTURE_AND_TRACE):
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
    return forms


def leaked(secrets: list[str], text: str) -> list[str]:
    """The hidden-test lines found in `text`, plainly or decoded."""
    forms = _decodings(text)
    return [line for line in secrets if any(line in form for form in forms)]
