"""Each exercise's rules, checked on the submitted source with `ast`, in the grader's own process.

Guards inside the student's kernel (`utils.checks.forbid_autograd`) are advice: code can undo anything
in its own process. So the grader reads the code instead of running it. An exercise declares its rules
in the metadata of the test cells whose points they guard:

    "metadata": {"course": {"rules": [{"rule": "no-autograd", "in": ["neuron_backward"]}]}}

    no-autograd  the named functions or classes (and everything of the notebook's they use) compute
                 gradients without autograd: no backward(), .grad, torch.autograd, torch.func, functorch
    no-torch     the named code does not use torch at all (a scalar engine of one's own)
    no-call      the named code calls none of "names" (e.g. ["logsumexp", "softmax"]), however reached

Two more rules hold for every submission:

    tampering     code that disarms a guard: assigning to attributes of torch, utils, numpy, builtins or
                  IPython, changing sys.modules or sys.meta_path, tracing hooks (sys.settrace), IPython's
                  events and input transformers. It breaks every rule the exercise declares (an exercise
                  that declares none gets a review flag instead).
    needs review  what `ast` cannot decide: exec, eval, compile, __import__, importlib, getattr or setattr
                  with a computed name, frames and code objects, threads, processes, signals and
                  finalizers that could run during a test. The instructor accepts or rejects it.

Names are followed through what the notebook binds (`import torch.autograd as ag`, `from torch import
autograd`, `c = utils.checks`, `T = torch`), so an alias neither hides a forbidden call nor a disarmed
guard. Comments and strings trip nothing. Only the student's cells are read (locked cells, the tests
among them, are the instructor's).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field

import nbformat

from autograders.course import Exercise
from autograders.results import Flag

KNOWN_RULES = ("no-autograd", "no-torch", "no-call")
AUTOGRAD_MODULES = ("torch.autograd", "torch.func", "functorch", "torch._functorch", "torch._C._functorch",
                    "torch._C._autograd", "torch.nn.utils.stateless")
AUTOGRAD_ATTRIBUTES = {"backward", "grad", "grad_fn", "next_functions", "retain_grad", "register_hook",
                       "register_post_accumulate_grad_hook", "jacobian", "hessian", "vjp", "jvp", "hvp", "vhp",
                       "jacrev", "jacfwd", "make_dual", "unpack_dual", "dual_level"}
PROTECTED = ("torch", "utils", "numpy", "builtins", "IPython", "ipython", "sys.modules", "sys.meta_path",
             "sys.path_hooks", "__builtins__")
UNPROTECTED = ("torch.backends",)  # settings a training loop may change (torch.backends.cudnn.benchmark = True)
TRACING = {"sys.settrace", "sys.setprofile", "sys.addaudithook", "threading.settrace", "threading.setprofile",
           "threading.settrace_all_threads", "threading.setprofile_all_threads", "sys.monitoring"}
IPYTHON_HOOKS = {"events", "ast_transformers", "input_transformers_cleanup", "input_transformers_post",
                 "input_transformer_manager", "set_custom_exc", "set_hook", "register_magic_function",
                 "register_magics", "showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
                 "displayhook", "display_pub", "user_ns", "user_global_ns", "push", "ex", "ev"}
MUTATING = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__", "insert", "append",
            "extend", "remove"}
DYNAMIC_CALLS = {"builtins.exec", "builtins.eval", "builtins.compile", "builtins.__import__", "builtins.globals",
                 "builtins.vars", "builtins.breakpoint"}
REVIEW_MODULES = ("importlib", "ctypes", "gc", "inspect", "threading", "_thread", "multiprocessing", "subprocess",
                  "signal", "pty", "weakref", "concurrent", "asyncio", "torch.overrides", "torch.utils._python_dispatch",
                  "linecache", "marshal", "pickle", "dill", "code", "codeop")
REVIEW_ATTRIBUTES = {"__dict__", "__code__", "__globals__", "__closure__", "__builtins__", "__subclasses__",
                     "__defaults__", "__kwdefaults__", "f_back", "f_globals", "f_locals", "f_code", "tb_frame",
                     "gi_frame", "cr_frame", "co_consts", "_getframe", "_current_frames", "__torch_function__",
                     "__torch_dispatch__", "fork", "forkpty", "system", "popen", "spawnl", "spawnv", "execv", "execl",
                     "execve", "posix_spawn", "kill", "killpg", "getoutput"}
REVIEW_METHODS = {"__del__", "__torch_function__", "__torch_dispatch__"}
BENIGN_MAGICS = {"time", "timeit", "matplotlib", "pip", "precision", "pprint", "who", "whos", "config"}
BUILTIN_NAMES = {"getattr", "setattr", "delattr", "exec", "eval", "compile", "__import__", "globals", "vars",
                 "breakpoint", "get_ipython", "__builtins__"}


@dataclass(frozen=True)
class Violation:
    """A broken rule: the test cells it guards score 0, with this reason."""

    rule: str  # in words: "no autograd in neuron_backward"
    guards: tuple[str, ...]  # the grade_ids whose points it takes
    cell: str
    line: int
    code: str  # the student's own line

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
        return line if len(line) <= 160 else line[:157] + "..."


def _python(source: str) -> str:
    """A cell's code as Python: IPython's magics (%pip, !ls) become the calls IPython makes of them."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _cells(notebook: nbformat.NotebookNode) -> list[_Cell]:
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        student = not nbgrader or not nbgrader.get("locked", False) or nbgrader.get("solution", False)
        label = nbgrader.get("grade_id") or f"cell {index + 1}"
        source = _python(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError:  # it did not run either: IPython refuses the whole cell
            continue
        cells.append(_Cell(label, tree, source.splitlines(), student))
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


def _root(target: ast.AST) -> ast.AST:
    """The object an attribute or item assignment changes: `a` in a.b.c = 1 or a[0].b = 1 (its value part)."""
    return target.value if isinstance(target, (ast.Attribute, ast.Subscript)) else target


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


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
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.With, ast.AsyncWith)):
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

    def qualify(self, node: ast.AST, local: dict[str, set[str]] | None = None) -> set[str]:
        """The dotted names an expression may stand for: {"torch.autograd.grad"} for ag.grad, say."""
        if isinstance(node, ast.Name):
            if local and node.id in local:
                return set(local[node.id])
            if node.id in self.module:
                return set(self.module[node.id])
            if node.id in BUILTIN_NAMES:
                return {f"builtins.{node.id}"}
            return {f"{module}.{node.id}" for module in self.wildcards}
        if isinstance(node, ast.Attribute):
            return {f"{q}.{node.attr}" for q in self.qualify(node.value, local)}
        if isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if "sys.modules" in self.qualify(node.value, local):
                    return {key.value}
                if "builtins.__builtins__" in self.qualify(node.value, local):
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


# ---------------------------------------------------------------- the guarded code and what it uses


def _binds(node: ast.AST, name: str) -> bool:
    """True when a module-level statement defines or rebinds `name`."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
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
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


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


def _defined_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name.split(".")[0]) for a in node.names]
    return [n for t in _targets(node) for n in _names_in_target(t)]


def _enclosing_locals(names: _Names, node: ast.AST) -> dict[str, set[str]]:
    return names.local_scope(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else {}


def _uses(names: _Names, node: ast.AST) -> list[tuple[ast.AST, set[str], str | None]]:
    """(expression, the dotted names it may stand for, its attribute name) for every name, attribute and import."""
    local = _enclosing_locals(names, node)
    found = []
    for n in ast.walk(node):
        if isinstance(n, (ast.Name, ast.Attribute, ast.Call)):
            found.append((n, names.qualify(n, local), n.attr if isinstance(n, ast.Attribute) else None))
        elif isinstance(n, ast.Import):
            found += [(n, {a.name}, None) for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module:
            found += [(n, {f"{n.module}.{a.name}" for a in n.names} | {n.module}, None)]
    return found


def _breaks(rule: dict, qualified: set[str], attribute: str | None) -> bool:
    kind = rule.get("rule")
    if kind == "no-autograd":
        return attribute in AUTOGRAD_ATTRIBUTES or any(_within(q, AUTOGRAD_MODULES) for q in qualified)
    if kind == "no-torch":
        return any(_within(q, ("torch", "functorch")) for q in qualified)
    if kind == "no-call":
        forbidden = set(rule.get("names", ()))
        return attribute in forbidden or any(q.rsplit(".", 1)[-1] in forbidden for q in qualified)
    raise ValueError(f"unknown rule {kind!r}: use no-autograd, no-torch or no-call")


def describe(rule: dict) -> str:
    """A rule in words, for the student's reason."""
    where = ", ".join(rule.get("in", ())) or "the notebook"
    if rule.get("rule") == "no-autograd":
        return f"no autograd in {where}"
    if rule.get("rule") == "no-torch":
        return f"no torch in {where}"
    return f"no {', '.join(rule.get('names', ()))} in {where}"


# ---------------------------------------------------------------- the whole notebook: tampering, needs review


def _tampering(names: _Names, cell: _Cell) -> list[tuple[ast.AST, str]]:
    """(node, why) for every place the cell disarms a guard."""
    found = []
    for node in ast.walk(cell.tree):
        for target in _targets(node):
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                changed = names.qualify(_root(target))
                if isinstance(target, ast.Attribute):
                    changed |= {q for q in names.qualify(target) if q.startswith(("sys.", "builtins."))}
                if any(_within(q, PROTECTED) and not _within(q, UNPROTECTED) for q in changed):
                    found.append((node, f"changes {sorted(changed)[0]}"))
        if isinstance(node, ast.Call):
            functions = names.qualify(node.func)
            if functions & {"builtins.setattr", "builtins.delattr"} and node.args:
                changed = names.qualify(node.args[0])
                if any(_within(q, PROTECTED) and not _within(q, UNPROTECTED) for q in changed):
                    found.append((node, f"changes {sorted(changed)[0]}"))
            if any(_within(q, TRACING) for q in functions):
                found.append((node, f"installs a hook ({sorted(functions)[0]})"))
            if isinstance(node.func, ast.Attribute) and node.func.attr in MUTATING:
                if names.qualify(node.func.value) & {"sys.modules", "sys.meta_path", "sys.path_hooks"}:
                    found.append((node, f"changes {sorted(names.qualify(node.func.value))[0]}"))
        if isinstance(node, ast.Attribute) and node.attr in IPYTHON_HOOKS and "ipython" in names.qualify(node.value):
            found.append((node, f"reaches into IPython ({node.attr})"))
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
            if any(q.startswith("ipython.run_") and q.endswith("magic") for q in functions) and node.args:
                magic = node.args[0]
                if not (isinstance(magic, ast.Constant) and str(magic.value).split()[0] in BENIGN_MAGICS):
                    found.append((node, "an IPython magic or shell command"))
            elif "ipython.system" in functions or "ipython.getoutput" in functions:
                found.append((node, "a shell command"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            risky = [m for m in modules if _within(m, REVIEW_MODULES)]
            if risky:
                found.append((node, f"imports {risky[0]}"))
        elif isinstance(node, ast.Attribute) and node.attr in REVIEW_ATTRIBUTES:
            if node.attr not in ("system", "kill", "getoutput") or names.qualify(node.value) & {"os", "ipython"}:
                found.append((node, f"uses .{node.attr}"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in REVIEW_METHODS:
            found.append((node, f"defines {node.name}, which runs whenever Python decides"))
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            found.append((node, "uses __builtins__"))
    return found


def _flag(kind: str, cell: _Cell, node: ast.AST, why: str) -> Flag:
    code = cell.code(node)
    digest = hashlib.sha1(f"{kind}|{cell.label}|{code}".encode()).hexdigest()[:10]
    return Flag(id=digest, cell=cell.label, line=getattr(node, "lineno", 0), code=code, why=why)


def check(exercise: Exercise, notebook: nbformat.NotebookNode) -> Report:
    """The rules of `exercise` on a prepared submission: what is broken, and what needs the instructor's eye."""
    cells = _cells(notebook)
    names = _Names(cells)
    report = Report()
    ruled = [t for t in exercise.tests if t.rules]
    for test in ruled:
        for rule in test.rules:
            violation = None
            for cell, node in _closure(cells, list(rule.get("in", ()))):
                for expression, qualified, attribute in _uses(names, node):
                    if _breaks(rule, qualified, attribute):
                        violation = Violation(describe(rule), (test.grade_id,), cell.label,
                                              getattr(expression, "lineno", 0), cell.code(expression))
                        break
                if violation:
                    break
            if violation:
                report.violations.append(violation)
    guarded = tuple(t.grade_id for t in ruled)
    seen = set()
    for cell in (c for c in cells if c.student):
        for node, why in _tampering(names, cell):
            key = (cell.label, getattr(node, "lineno", 0))
            if key in seen:
                continue
            seen.add(key)
            if guarded:
                report.violations.append(Violation(f"no tampering with the course's guards: the code {why}", guarded,
                                                   cell.label, getattr(node, "lineno", 0), cell.code(node)))
            else:
                report.flags.append(_flag("tampering", cell, node, f"the code {why}"))
        for node, why in _needs_review(names, cell):
            key = (cell.label, getattr(node, "lineno", 0))
            if key not in seen:
                seen.add(key)
                report.flags.append(_flag("review", cell, node, why))
    return report
