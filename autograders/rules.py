"""Each exercise's rules, checked on the submitted source with `ast`, in the grader's own process.

Guards inside the student's kernel (`utils.checks.forbid_autograd`) are advice: code can undo anything
in its own process. So the grader reads the code instead of running it. An exercise declares its rules
in the metadata of the test cells whose points they guard:

    "metadata": {"course": {"rules": [{"rule": "no-autograd", "in": ["neuron_backward"]}]}}

    no-autograd  the named functions or classes (and everything of the notebook's they use) compute
                 gradients without autograd: no backward(), .grad, torch.autograd, torch.func, functorch
    no-torch     the named code does not use torch at all (a scalar engine of one's own)
    no-call      the named code calls none of "names" (e.g. ["logsumexp", "softmax"]), however reached

In the named code, torch's private internals (`torch._C`, `torch._softmax`, `torch.ops`) break every rule:
they are the back doors to what the rules forbid. Two more rules hold for every submission:

    tampering     code that disarms a guard or writes answers for the tests: assigning to attributes of torch,
                  utils, numpy, builtins or IPython, changing sys.modules or sys.meta_path, tracing hooks
                  (sys.settrace), reaching into IPython (its events, its shell), `__main__`, the hidden tests'
                  own names (`cases`, `answers`). It breaks every rule the exercise declares (an exercise that
                  declares none gets a review flag instead).
    needs review  what `ast` cannot decide: exec, eval, compile, __import__, importlib, getattr or setattr
                  with a computed name, frames and code objects, threads, processes, signals and finalizers
                  that could run during a test, magics that run code the grader cannot read; and what the
                  exercise's rules forbid, used outside the code they name, or through a method name the
                  notebook defines itself (`layer.backward()` of the student's own layer). The instructor
                  accepts or rejects it (`course review`).

Names are followed through what the notebook binds (`import torch.autograd as ag`, `from torch import
autograd`, `c = utils.checks`, `T = torch`, walrus and `match` bindings) and resolved by value where the
grader can import them (`from utils.expressions import torch as T` is torch). Comments and strings trip
nothing. Only the student's cells are read (locked cells, the tests among them, are the instructor's);
the bodies of `%time`, `%timeit` and `%%capture` are read as the code they are.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import sys
from dataclasses import dataclass, field

import nbformat

from autograders.course import HIDDEN, Exercise
from autograders.results import Flag, printable

KNOWN_RULES = ("no-autograd", "no-torch", "no-call")
AUTOGRAD_MODULES = ("torch.autograd", "torch.func", "functorch", "torch._functorch", "torch._C._functorch",
                    "torch._C._autograd", "torch.nn.utils.stateless")
AUTOGRAD_ATTRIBUTES = {"backward", "grad", "grad_fn", "next_functions", "retain_grad", "register_hook",
                       "register_post_accumulate_grad_hook", "jacobian", "hessian", "vjp", "jvp", "hvp", "vhp",
                       "jacrev", "jacfwd", "make_dual", "unpack_dual", "dual_level", "run_backward"}
PROTECTED = ("torch", "utils", "numpy", "builtins", "IPython", "ipython", "sys.modules", "sys.meta_path",
             "sys.path_hooks", "__builtins__", "__main__")
UNPROTECTED = ("torch.backends",)  # settings a training loop may change (torch.backends.cudnn.benchmark = True)
TRACING = {"sys.settrace", "sys.setprofile", "sys.addaudithook", "threading.settrace", "threading.setprofile",
           "threading.settrace_all_threads", "threading.setprofile_all_threads", "sys.monitoring"}
IPYTHON_ALLOWED = {"run_line_magic", "run_cell_magic", "system", "getoutput"}  # judged with the magic they run
MUTATING = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__", "insert", "append",
            "extend", "remove"}
DYNAMIC_CALLS = {"builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__", "builtins.globals",
                 "builtins.vars", "builtins.breakpoint"}
REVIEW_MODULES = ("importlib", "ctypes", "gc", "inspect", "threading", "_thread", "multiprocessing", "subprocess",
                  "signal", "pty", "weakref", "concurrent", "asyncio", "torch.overrides", "torch.utils._python_dispatch",
                  "linecache", "marshal", "pickle", "dill", "code", "codeop", "traceback", "utils.grading")
REVIEW_ATTRIBUTES = {"__dict__", "__code__", "__globals__", "__closure__", "__builtins__", "__subclasses__",
                     "__defaults__", "__kwdefaults__", "f_back", "f_globals", "f_locals", "f_code", "tb_frame",
                     "gi_frame", "cr_frame", "co_consts", "_getframe", "_current_frames", "__torch_function__",
                     "__torch_dispatch__", "fork", "forkpty", "system", "popen", "spawnl", "spawnv", "execv", "execl",
                     "execve", "posix_spawn", "kill", "killpg", "getoutput", "environ", "getenv", "putenv"}
REVIEW_METHODS = {"__del__", "__torch_function__", "__torch_dispatch__"}
CODE_MAGICS = {"time", "timeit", "capture"}  # magics whose argument or body is Python the grader reads
BENIGN_MAGICS = {"matplotlib", "pip", "precision", "pprint", "who", "whos"}
BUILTIN_NAMES = {"getattr", "setattr", "delattr", "exec", "eval", "compile", "__import__", "globals", "vars",
                 "breakpoint", "get_ipython", "__builtins__"}
RESOLVABLE = ("torch", "utils", "numpy", "functorch", "math", "operator")  # imported by the grader to resolve names


@dataclass(frozen=True)
class Violation:
    """A broken rule: the test cells it guards score 0, with this reason."""

    rule: str  # in words: "no autograd in neuron_backward"
    guards: tuple[str, ...]  # the grade_ids whose points it takes
    cell: str
    line: int
    code: str  # the student's own line (control characters written out)

    @property
    def reason(self) -> str:
        return f"rule broken ({self.rule}): {self.cell} line {self.line}: `{self.code}`"


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)

    def broken(self, grade_id: str) -> Violation | None:
        return next((v for v in self.violations if grade_id in v.guards), None)


# ---------------------------------------------------------------- reading the notebook


@dataclass
class _Cell:
    label: str
    tree: ast.Module
    lines: list[str]
    student: bool

    def code(self, node: ast.AST) -> str:
        line = self.lines[node.lineno - 1].strip() if 0 < getattr(node, "lineno", 0) <= len(self.lines) else ""
        return printable(line if len(line) <= 160 else line[:157] + "...")


class Unreadable(Exception):
    """The grader could not read a student's cell (nested too deeply, say): the rules cannot be checked."""

    def __init__(self, label: str, source: str = ""):
        super().__init__(label)
        first = source.strip().splitlines()[0] if source.strip() else ""
        self.label, self.code = label, printable(first[:60] + (" ..." if len(first) > 60 else ""))


def _python(source: str) -> str:
    """A cell's code as Python: IPython's magics (%pip, !ls) become the calls IPython makes of them."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _without_options(line: str) -> str:
    """`%timeit -n 10 -r 3 f(x)` -> `f(x)`: the options timeit takes, then its statement."""
    words = line.split(" ")
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option[1:2] in ("n", "r", "p") and len(option) == 2 and words:  # -n 10: the value is the next word
            words.pop(0)
    return " ".join(words)


def _magic_code(tree: ast.Module) -> list[str]:
    """The Python inside `%time`/`%timeit`/`%%time`/`%%timeit`/`%%capture`: their argument and their body."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("run_line_magic", "run_cell_magic") and node.args
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
            name, *rest = [a.value for a in node.args]
            if name in CODE_MAGICS:
                line = rest[0] if rest else ""
                found += ([] if name == "capture" else [_without_options(line.strip())]) + rest[1:]
    return [code for code in found if code.strip()]


def _cells(notebook: nbformat.NotebookNode) -> list[_Cell]:
    """The code cells as syntax trees (with the code inside magics as cells of their own, under the same label).

    A student's cell, or the code inside one of its magics, that the grader cannot read raises Unreadable."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        student = not nbgrader or not nbgrader.get("locked", False) or nbgrader.get("solution", False)
        label = nbgrader.get("grade_id") or f"cell {index + 1}"
        sources = [(cell.source, False)]
        while sources:
            source, inside_magic = sources.pop()
            try:
                source = _python(source)  # IPython's own transformer refuses a badly indented cell, as IPython does
                tree = ast.parse(source)
            except SyntaxError:  # IndentationError too. A cell IPython refuses did not run: nothing to check. A
                # magic's code may run another way, so a student's that cannot be read needs a person.
                if student and inside_magic:
                    raise Unreadable(label, source) from None
                continue
            except (RecursionError, MemoryError, ValueError):
                if student:
                    raise Unreadable(label, source) from None
                continue
            cells.append(_Cell(label, tree, source.splitlines(), student))
            sources += [(code, True) for code in _magic_code(tree)]
    return cells


# ---------------------------------------------------------------- names: what may a name refer to?


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, (ast.Assign,)):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
        return [node.target]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [item.optional_vars for item in node.items if item.optional_vars is not None]
    if isinstance(node, ast.Delete):
        return node.targets
    if isinstance(node, ast.NamedExpr):
        return [node.target]
    return []


def _names_in_target(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for element in target.elts for n in _names_in_target(element)]
    if isinstance(target, ast.Starred):
        return _names_in_target(target.value)
    return []


def _pattern_names(node: ast.AST) -> list[str]:
    """The names a `match` statement's patterns capture."""
    found = []
    for n in ast.walk(node):
        if isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            found.append(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            found.append(n.rest)
    return found


def _root(target: ast.AST) -> ast.AST:
    """The object an attribute or item assignment changes: `a` in a.b.c = 1 or a[0].b = 1 (its value part)."""
    return target.value if isinstance(target, (ast.Attribute, ast.Subscript)) else target


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


@functools.lru_cache(maxsize=4096)
def _resolve(dotted: str) -> tuple[str, str] | None:
    """What a dotted name is in the grader's own modules: ("module", its real name) for a module (so
    `utils.expressions.torch` is `torch`), ("function", module.name) for a function (so a re-exported
    `torch.autograd.grad` is still that), ("other", module.name) for a class or anything else; None where
    the grader cannot resolve it."""
    parts = dotted.split(".")
    if parts[0] not in RESOLVABLE:
        return None
    try:
        value = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], start=1):
            try:
                value = getattr(value, part)
            except AttributeError:
                value = importlib.import_module(".".join(parts[: i + 1]))
    except Exception:  # not something the grader has: keep the spelling
        return None
    if type(value).__name__ == "module":
        return "module", value.__name__
    module, name = getattr(value, "__module__", None), getattr(value, "__name__", None)
    if not (isinstance(module, str) and isinstance(name, str)):
        return None
    return ("other" if isinstance(value, type) else "function"), f"{module}.{name}"


def _canonical(dotted: str) -> str | None:
    """The real name of a module a dotted name reaches (`utils.expressions.torch` -> `torch`), or None."""
    resolved = _resolve(dotted)
    return resolved[1] if resolved and resolved[0] == "module" else None


class _Names:
    """What each name of the notebook's module scope (and of one function's scope) may refer to, as dotted names."""

    def __init__(self, cells: list[_Cell]):
        self.module: dict[str, set[str]] = {}
        self.wildcards: set[str] = set()
        for cell in cells:
            for node in cell.tree.body:
                self._bind(node, self.module)

    def _bind(self, node: ast.AST, scope: dict[str, set[str]], local: dict[str, set[str]] | None = None) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    scope.setdefault(alias.asname, set()).add(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    scope.setdefault(top, set()).add(top)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name == "*":
                    self.wildcards.add(node.module)
                else:
                    scope.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.With, ast.AsyncWith, ast.Expr)):
            if isinstance(node, ast.Expr):  # walrus bindings inside an expression statement
                for walrus in (n for n in ast.walk(node) if isinstance(n, ast.NamedExpr)):
                    self._bind(walrus, scope, local)
                return
            if isinstance(node, (ast.With, ast.AsyncWith)):
                pairs = [(item.optional_vars, item.context_expr) for item in node.items if item.optional_vars is not None]
            else:
                value = node.value
                pairs = [(target, value) for target in _targets(node)] if value is not None else []
            for target, value in pairs:
                if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
                    pairs_inner = zip(target.elts, value.elts)
                else:
                    pairs_inner = [(target, value)]
                for t, v in pairs_inner:
                    meanings = self.qualify(v, local)
                    for name in _names_in_target(t):
                        if meanings:
                            scope.setdefault(name, set()).update(meanings)

    def local_scope(self, function: ast.AST) -> dict[str, set[str]]:
        """The aliases a function makes for itself (import torch.autograd as ag inside it, say)."""
        local: dict[str, set[str]] = {}
        for node in ast.walk(function):
            if node is not function:
                self._bind(node, local, local)
        return local

    def qualify(self, node: ast.AST, local: dict[str, set[str]] | None = None, wild: bool = True) -> set[str]:
        """The dotted names an expression may stand for: {"torch.autograd.grad"} for ag.grad, say, and the name
        of the same object where the grader can resolve it (`utils.expressions.torch` -> `torch`).
        `wild=False` leaves out what only a `from ... import *` would make of an unknown name."""
        found = self._qualify(node, local, wild)
        return found | {c for c in map(_canonical, found) if c}

    def _qualify(self, node: ast.AST, local: dict[str, set[str]] | None = None, wild: bool = True) -> set[str]:
        if isinstance(node, ast.Name):
            if local and node.id in local:
                return set(local[node.id])
            if node.id in self.module:
                return set(self.module[node.id])
            if node.id in BUILTIN_NAMES:
                return {f"builtins.{node.id}"}
            return {f"{module}.{node.id}" for module in self.wildcards} if wild else set()
        if isinstance(node, ast.Attribute):
            return {f"{q}.{node.attr}" for q in self.qualify(node.value, local, wild)}
        if isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if "sys.modules" in self.qualify(node.value, local, wild):
                    return {key.value}
                if "builtins.__builtins__" in self.qualify(node.value, local, wild):
                    return {f"builtins.{key.value}"}
            return set()
        if isinstance(node, ast.Call):
            functions = self.qualify(node.func, local)
            if functions & {"builtins.get_ipython", "IPython.get_ipython", "IPython.core.getipython.get_ipython"}:
                return {"ipython"}
            name = node.args[1] if len(node.args) >= 2 else None
            if "builtins.getattr" in functions and isinstance(name, ast.Constant) and isinstance(name.value, str):
                return {f"{q}.{name.value}" for q in self.qualify(node.args[0], local)}
            module = node.args[0] if node.args else None
            if functions & {"builtins.__import__", "importlib.import_module"} and isinstance(module, ast.Constant):
                return {str(module.value)}
            return set()
        return set()


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _private_torch(name: str) -> bool:
    """torch's internals, the back doors to what the rules forbid: torch._C, torch._softmax, torch.ops."""
    parts = name.split(".")
    return parts[0] == "torch" and (any(p.startswith("_") and not p.startswith("__") for p in parts[1:])
                                    or parts[1:2] == ["ops"])


# ---------------------------------------------------------------- the guarded code and what it uses


def _binds(node: ast.AST, name: str) -> bool:
    """True when a module-level statement defines or rebinds `name` (walrus and `match` captures too)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    if isinstance(node, ast.Match) and name in _pattern_names(node):
        return True
    if any(isinstance(n, ast.NamedExpr) and name in _names_in_target(n.target) for n in ast.walk(node)):
        return True
    return any(name in _names_in_target(t) for t in _targets(node))


def _changes(node: ast.AST, name: str) -> bool:
    """True when a statement (at any depth) changes what `name` refers to: name.x = ..., name[k] = ..., name.append()."""
    if any(_base_name(_root(t)) == name for t in _targets(node) if isinstance(t, (ast.Attribute, ast.Subscript))):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute):
        return _base_name(node.value.func.value) == name
    if isinstance(node, ast.Global):
        return name in node.names
    return False


def _functions_declaring_global(tree: ast.Module, name: str) -> list[ast.AST]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(isinstance(n, ast.Global) and name in n.names for n in ast.walk(node)):
                found.append(node)
    return found


def _referenced(node: ast.AST) -> set[str]:
    """The names a statement reads, and those a `from ... import` of it brings in (followed like the rest)."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, ast.ImportFrom):
        names |= {a.name for a in node.names}
    return names


def _defined_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name.split(".")[0]) for a in node.names]
    found = [n for t in _targets(node) for n in _names_in_target(t)]
    found += [n for w in ast.walk(node) if isinstance(w, ast.NamedExpr) for n in _names_in_target(w.target)]
    return found + (_pattern_names(node) if isinstance(node, ast.Match) else [])


def _closure(cells: list[_Cell], roots: list[str]) -> list[tuple[_Cell, ast.AST]]:
    """Every student statement that defines, rebinds or changes the named code, and all it uses, transitively."""
    student = [c for c in cells if c.student]
    defined = {n for c in student for node in c.tree.body for n in _defined_names(node)}
    seen_names, todo, found, seen_nodes = set(), list(roots), [], set()
    while todo:
        name = todo.pop()
        if name in seen_names:
            continue
        seen_names.add(name)
        for cell in student:
            nodes = [n for n in cell.tree.body if _binds(n, name)]
            nodes += [n for n in ast.walk(cell.tree) if isinstance(n, ast.stmt) and _changes(n, name)]
            nodes += _functions_declaring_global(cell.tree, name)
            for node in nodes:
                if id(node) in seen_nodes:
                    continue
                seen_nodes.add(id(node))
                found.append((cell, node))
                todo += [n for n in _referenced(node) if n in defined and n not in seen_names]
    return found


def _enclosing_locals(names: _Names, node: ast.AST) -> dict[str, set[str]]:
    return names.local_scope(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else {}


def _uses(names: _Names, node: ast.AST) -> list[tuple[ast.AST, set[str], set[str], str | None]]:
    """(expression, the dotted names it is spelled as, those of what it resolves to, the attribute it reaches) for
    every name, attribute, import and attribute given as a string (getattr, attrgetter, methodcaller)."""
    local = _enclosing_locals(names, node)
    found = []

    def add(n: ast.AST, spelled: set[str], attribute: str | None) -> None:
        found.append((n, spelled, {r for r in map(_resolve, spelled) if r}, attribute))

    for n in ast.walk(node):
        if isinstance(n, (ast.Name, ast.Attribute, ast.Call)):
            add(n, names._qualify(n, local), n.attr if isinstance(n, ast.Attribute) else None)
            if isinstance(n, ast.Call):
                functions = names.qualify(n.func, local)
                texts = [a.value for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if functions & {"builtins.getattr", "builtins.hasattr", "operator.attrgetter", "operator.methodcaller"}:
                    for text in texts:
                        for part in text.split("."):
                            add(n, set(), part)
        elif isinstance(n, ast.Import):
            for a in n.names:
                add(n, {a.name}, None)
        elif isinstance(n, ast.ImportFrom) and n.module:
            add(n, {f"{n.module}.{a.name}" for a in n.names} | {n.module}, None)
    return found


def _verdict(rule: dict, spelled: set[str], resolved: set, attribute: str | None, own: set[str]) -> str | None:
    """"broken", "review" (a name the notebook also defines itself), or None, for one use in the named code."""
    kind = rule.get("rule")
    if any(_private_torch(q) for q in spelled):  # as written: torch's own functions live in private modules
        return "broken"
    modules = spelled | {name for what, name in resolved if what == "module"}
    functions = {name for what, name in resolved if what == "function"}
    everything = spelled | {name for _, name in resolved}
    if kind == "no-autograd":  # autograd's functions, however imported; not its classes (torch.no_grad is one)
        by_name = attribute in AUTOGRAD_ATTRIBUTES
        by_module = any(_within(q, AUTOGRAD_MODULES) for q in modules | functions)
    elif kind == "no-torch":
        by_name, by_module = False, any(_within(q, ("torch", "functorch")) for q in everything)
    elif kind == "no-call":
        forbidden = set(rule.get("names", ()))
        by_name = attribute in forbidden
        by_module = any(q.rsplit(".", 1)[-1] in forbidden for q in everything)
    else:
        raise ValueError(f"unknown rule {kind!r}: use no-autograd, no-torch or no-call")
    if by_module:
        return "broken"
    if by_name:  # `.backward` of a tensor, or of the student's own layer? the grader cannot tell types apart
        return "review" if attribute in own else "broken"
    return None


def describe(rule: dict) -> str:
    """A rule in words, for the student's reason."""
    where = ", ".join(rule.get("in", ())) or "the notebook"
    if rule.get("rule") == "no-autograd":
        return f"no autograd in {where}"
    if rule.get("rule") == "no-torch":
        return f"no torch in {where}"
    return f"no {', '.join(rule.get('names', ()))} in {where}"


# ---------------------------------------------------------------- the whole notebook: tampering, needs review


def _protected(names: _Names, expression: ast.AST) -> str | None:
    """A protected module the expression reaches anywhere (not as the function of a call, which makes something new)."""
    callees = {id(n.func) for n in ast.walk(expression) if isinstance(n, ast.Call)}
    # A chain counts as a whole (torch.backends.cudnn is not torch): skip what is only part of a longer one.
    parts = {id(n.value) for n in ast.walk(expression) if isinstance(n, (ast.Attribute, ast.Subscript))}
    for n in ast.walk(expression):
        if isinstance(n, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)) and id(n) not in callees | parts:
            for q in sorted(names.qualify(n, wild=False)):
                if _within(q, PROTECTED) and not _within(q, UNPROTECTED):
                    return q
    return None


def _tampering(names: _Names, cell: _Cell, hidden: set[str]) -> list[tuple[ast.AST, str]]:
    """(node, why) for every place the cell disarms a guard or reaches for the tests' own machinery."""
    found = []
    for node in ast.walk(cell.tree):
        for target in _targets(node):
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                changed = _protected(names, _root(target))
                if changed is None and isinstance(target, ast.Attribute):
                    changed = next((q for q in sorted(names.qualify(target)) if _within(q, PROTECTED)
                                    and q.startswith(("sys.", "builtins."))), None)
                if changed:
                    found.append((node, f"changes {changed}"))
        if isinstance(node, ast.Call):
            functions = names.qualify(node.func)
            if functions & {"builtins.setattr", "builtins.delattr"} and node.args:
                changed = _protected(names, node.args[0])
                if changed:
                    found.append((node, f"changes {changed}"))
            if any(_within(q, TRACING) for q in functions):
                found.append((node, f"installs a hook ({sorted(functions)[0]})"))
            if isinstance(node.func, ast.Attribute) and node.func.attr in MUTATING:
                if names.qualify(node.func.value) & {"sys.modules", "sys.meta_path", "sys.path_hooks"}:
                    found.append((node, f"changes {sorted(names.qualify(node.func.value))[0]}"))
        if isinstance(node, ast.Attribute) and node.attr not in IPYTHON_ALLOWED and "ipython" in names.qualify(node.value):
            found.append((node, f"reaches into IPython ({node.attr})"))
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if _within(module, ("IPython",)) and not _within(module, ("IPython.display",)):
                    found.append((node, f"reaches into IPython ({module})"))
                if module == "__main__":
                    found.append((node, "reaches into __main__, where the tests run"))
        if isinstance(node, ast.Call) and node.args and any(
                q.startswith("ipython.run_") and q.endswith("magic") for q in names.qualify(node.func)):
            magic = node.args[0]
            name = str(magic.value).split()[0] if isinstance(magic, ast.Constant) and str(magic.value).split() else "?"
            if name not in BENIGN_MAGICS | CODE_MAGICS:  # %config, %run, %%script...: code the grader cannot read
                found.append((node, f"runs code through the %{name} magic"))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in hidden:
            found.append((node, f"uses the hidden tests' own `{node.id}`"))
        if isinstance(node, (ast.Subscript, ast.Attribute)) and "__main__" in names.qualify(node):
            found.append((node, "reaches into __main__, where the tests run"))
    return found


def _needs_review(names: _Names, cell: _Cell) -> list[tuple[ast.AST, str]]:
    found = []
    for node in ast.walk(cell.tree):
        if isinstance(node, ast.Call):
            functions = names.qualify(node.func)
            if functions & DYNAMIC_CALLS:
                found.append((node, f"{sorted(functions & DYNAMIC_CALLS)[0].split('.')[-1]}() runs code the grader cannot read"))
            elif functions & {"builtins.getattr", "builtins.setattr", "builtins.delattr"}:
                name = node.args[1] if len(node.args) >= 2 else None
                if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                    found.append((node, "an attribute reached by a computed name"))
            if "ipython.system" in functions or "ipython.getoutput" in functions:
                found.append((node, "a shell command"))
            if functions & {"sys.modules.get", "sys.modules.__getitem__"}:
                found.append((node, "a module looked up by name"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            risky = [m for m in modules if _within(m, REVIEW_MODULES)]
            if risky:
                found.append((node, f"imports {risky[0]}"))
        elif isinstance(node, ast.Attribute) and node.attr in REVIEW_ATTRIBUTES:
            if node.attr not in ("system", "kill", "getoutput", "environ", "getenv", "putenv") \
                    or names.qualify(node.value) & {"os", "ipython"}:
                found.append((node, f"uses .{node.attr}"))
        elif isinstance(node, ast.Subscript) and "sys.modules" in names.qualify(node.value):
            if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                found.append((node, "a module looked up by a computed name"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in REVIEW_METHODS:
            found.append((node, f"defines {node.name}, which runs whenever Python decides"))
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            found.append((node, "uses __builtins__"))
        elif isinstance(node, ast.Constant) and node.value == "COURSE_ANSWERS":
            found.append((node, "names the folder where the tests record answers"))
    return found


def _flag(kind: str, cell: _Cell, node: ast.AST, why: str) -> Flag:
    code = cell.code(node)
    digest = hashlib.sha1(f"{kind}|{cell.label}|{code}".encode()).hexdigest()[:10]
    return Flag(id=digest, cell=cell.label, line=getattr(node, "lineno", 0), code=code, why=printable(why))


def _top_level_names(source: str) -> set[str]:
    try:
        return {n for node in ast.parse(_python(source)).body for n in _defined_names(node)}
    except (SyntaxError, RecursionError, ValueError):
        return set()


def hidden_names(exercise: Exercise, cells: list[_Cell]) -> set[str]:
    """Names only the hidden tests define (`cases`, `answers`, `check`, ...): a student's code cannot know them,
    unless it defines them itself."""
    hidden = set().union(*(_top_level_names(t.hidden) for t in exercise.tests))
    visible = set().union(*(_top_level_names(HIDDEN.sub("", c.source)) for c in exercise.notebook.cells if c.cell_type == "code"))
    own = {n for c in cells if c.student for node in ast.walk(c.tree)
           for n in ([node.id] if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) else [])}
    own |= {n for c in cells if c.student for node in ast.walk(c.tree) if isinstance(node, ast.stmt)
            for n in _defined_names(node)}
    own |= {a.arg for c in cells if c.student for node in ast.walk(c.tree) if isinstance(node, ast.arg) for a in [node]}
    return hidden - visible - own - set(dir(sys.modules["builtins"]))


def check(exercise: Exercise, notebook: nbformat.NotebookNode) -> Report:
    """The rules of `exercise` on a prepared submission: what is broken, and what needs the instructor's eye."""
    ruled = tuple(t.grade_id for t in exercise.tests if t.rules)
    try:
        return _check(exercise, notebook)
    except Unreadable as unreadable:
        where, code = unreadable.label, unreadable.code
    except (RecursionError, MemoryError):
        where, code = "a cell", ""
    report = Report()
    rule = "code the grader can read: this cell is nested too deeply for it, so write it more simply"
    if ruled:
        report.violations.append(Violation(rule, ruled, where, 1, code))
    else:
        report.flags.append(Flag(hashlib.sha1(f"{where}|{code}".encode()).hexdigest()[:10], where, 1, code, rule))
    return report


def _check(exercise: Exercise, notebook: nbformat.NotebookNode) -> Report:
    cells = _cells(notebook)
    names = _Names(cells)
    own = {n.name for c in cells if c.student for n in ast.walk(c.tree)
           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    report = Report()
    ruled = [t for t in exercise.tests if t.rules]
    reviewed: set[tuple[str, int]] = set()
    for test in ruled:
        for rule in test.rules:
            violation = None
            for cell, node in _closure(cells, list(rule.get("in", ()))):
                for expression, spelled, resolved, attribute in _uses(names, node):
                    verdict = _verdict(rule, spelled, resolved, attribute, own)
                    if verdict == "broken" and violation is None:
                        violation = Violation(describe(rule), (test.grade_id,), cell.label,
                                              getattr(expression, "lineno", 0), cell.code(expression))
                    elif verdict == "review" and (cell.label, getattr(expression, "lineno", 0)) not in reviewed:
                        reviewed.add((cell.label, getattr(expression, "lineno", 0)))
                        report.flags.append(_flag("own-name", cell, expression, f"`.{attribute}` in {describe(rule)}: "
                                                  f"autograd's (or torch's) or the notebook's own method?"))
            if violation:
                report.violations.append(violation)
    # What a rule forbids, used outside all the code the rules name: fine for a scratch check, but a person looks.
    guarded = {id(node) for test in ruled for rule in test.rules for _, node in _closure(cells, list(rule.get("in", ())))}
    for test in ruled:
        for rule in test.rules:
            for cell in (c for c in cells if c.student):
                for node in cell.tree.body:
                    if id(node) in guarded:
                        continue
                    for expression, spelled, resolved, attribute in _uses(names, node):
                        if _verdict(rule, spelled, resolved, attribute, own) == "broken":
                            key = (cell.label, getattr(expression, "lineno", 0))
                            if key not in reviewed:
                                reviewed.add(key)
                                report.flags.append(_flag("outside", cell, expression,
                                                          f"used outside the code the rule names ({describe(rule)})"))
                            break
    guards = tuple(t.grade_id for t in ruled)
    hidden = hidden_names(exercise, cells)
    seen = set()
    for cell in (c for c in cells if c.student):
        for node, why in _tampering(names, cell, hidden):
            key = (cell.label, getattr(node, "lineno", 0))
            if key in seen:
                continue
            seen.add(key)
            if guards:
                report.violations.append(Violation(f"no tampering with the tests or the course's guards: the code {why}",
                                                   guards, cell.label, getattr(node, "lineno", 0), cell.code(node)))
            else:
                report.flags.append(_flag("tampering", cell, node, f"the code {why}"))
        for node, why in _needs_review(names, cell):
            key = (cell.label, getattr(node, "lineno", 0))
            if key not in seen and key not in reviewed:
                seen.add(key)
                report.flags.append(_flag("review", cell, node, why))
    return report
