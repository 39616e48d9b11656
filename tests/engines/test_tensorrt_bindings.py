"""Every TensorRT name and call this project's source uses, checked against the real compiled
bindings of one 10.x and one 11.x release (tests/trt_bindings.py): no GPU, no fakes.

The names come from the source itself (an AST walk, not a hand list): attribute chains on the
``tensorrt`` module (``trt.BuilderFlag.TF32``), and calls and attributes on the objects those
return, typed by the real pybind signatures (``trt.Builder(...)`` is a Builder, whose
``create_network`` returns an INetworkDefinition, ...). Each call's positional count and keyword
names must fit one of the member's signatures. Names read only under ``hasattr`` are the source's
own version checks and may be missing; the legacy-INT8 module is TensorRT 10 only, and on 11.x
its names must indeed be gone (so its gate is needed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.trt_bindings import bindings_api, run_with_bindings

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("10.13.0.35", "11.4.0.106")
LEGACY = {"alexnet_deploy/engines/tensorrt_legacy.py"}  # TensorRT 10 only (its docstring)
PREFIX = "tensorrt_bindings.tensorrt."


def tensorrt_sources() -> dict[str, ast.Module]:
    """Modules of the package that import tensorrt or take it as a ``trt`` parameter."""
    found = {}
    for path in sorted((ROOT / "alexnet_deploy").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            imports = isinstance(node, ast.Import) and any(a.name == "tensorrt" for a in node.names)
            takes = isinstance(node, ast.arg) and node.arg == "trt"
            if imports or takes:
                found[str(path.relative_to(ROOT))] = tree
                break
    return found


def module_aliases(tree: ast.Module) -> set[str]:
    names = {"trt"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "tensorrt"}
    return names


def chain(node) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def signatures(doc: str) -> list[tuple[list[tuple[str, bool]], str]]:
    """Pybind signature lines -> [(params (name, has default) after self, return type)]."""
    out = []
    for line in doc.splitlines():
        match = re.match(r"\s*(?:\d+\.\s*)?\w+\((.*)\)\s*->\s*(.+)$", line)
        if not match:
            continue
        params, depth, current = [], 0, ""
        for ch in match.group(1) + ",":
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            if ch == "," and depth == 0:
                if current.strip():
                    params.append(current.strip())
                current = ""
            else:
                current += ch
        parsed = [(p.split(":")[0].strip(), "=" in p) for p in params]
        if parsed and parsed[0][0] == "self":
            parsed = parsed[1:]
        out.append(([p for p in parsed if not p[0].startswith("*")], match.group(2).strip()))
    return out


class Uses(ast.NodeVisitor):
    """Types of names (flow-insensitive, per module), then every use checked."""

    def __init__(self, api: dict, aliases: set[str], where: str) -> None:
        self.classes, self.functions = api["classes"], api["functions"]
        self.aliases, self.where = aliases, where
        self.types: dict[str, str] = {}
        self.guarded: set[int] = set()
        self.problems: list[str] = []
        self.used: set[str] = set()
        self.scope: dict[int, tuple[str, str]] = {}  # node -> (class, function) around it

    def scopes(self, tree: ast.Module) -> None:
        def walk(node, cls: str, func: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    walk(child, child.name, "")
                elif isinstance(child, ast.FunctionDef):
                    walk(child, cls, f"{cls}.{child.name}")
                else:
                    self.scope[id(child)] = (cls, func)
                    walk(child, cls, func)
            self.scope.setdefault(id(node), (cls, func))

        walk(tree, "", "")

    def key(self, parts: list[str], node) -> str:
        """Names are typed per function; ``self.x`` per class."""
        cls, func = self.scope.get(id(node), ("", ""))
        return f"{cls if parts[0] == 'self' else func}:{'.'.join(parts)}"

    def class_named(self, text: str) -> str | None:
        """A return type as pybind prints it: 'tensorrt_bindings.tensorrt.X', or a C++ name
        it did not map ('nvonnxparser::IParserError' is the Python class ParserError)."""
        name = text.removeprefix(PREFIX).split("::")[-1]
        for candidate in (name, name[1:] if name.startswith("I") else name):
            if candidate in self.classes:
                return candidate
        return None

    def call_sites(self, tree: ast.Module) -> dict[tuple[str, int], str]:
        """(function name, argument position) -> the TensorRT class passed there."""
        sites = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                for i, arg in enumerate(node.args):
                    found = self.type_of(arg)
                    if found:
                        sites[(node.func.id, i)] = found
        return sites

    def take_parameters(self, tree: ast.Module, sites: dict[tuple[str, int], str]) -> None:
        """Parameters of this module's functions typed by what the project passes them."""
        if not self.scope:
            self.scopes(tree)

        def typed(function: ast.FunctionDef, cls: str, name: str, skip: int) -> None:
            for i, arg in enumerate(function.args.args[skip:]):
                if (name, i) in sites:
                    self.types[f"{cls}.{function.name}:{arg.arg}"] = sites[(name, i)]

        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                cls = self.scope.get(id(node), ("", ""))[0]
                typed(node, cls, node.name, 0)
            if isinstance(node, ast.ClassDef):  # Class(x) passes x to __init__(self, x)
                for init in node.body:
                    if isinstance(init, ast.FunctionDef) and init.name == "__init__":
                        typed(init, node.name, node.name, 1)

    def type_of(self, node) -> str | None:
        if isinstance(node, ast.Call):
            parts = chain(node.func)
            if parts and parts[0] in self.aliases and len(parts) == 2:
                return parts[1] if parts[1] in self.classes else None
            if isinstance(node.func, ast.Attribute):
                owner = self.type_of(node.func.value)
                member = self.classes.get(owner or "", {}).get(node.func.attr)
                if member:
                    for _, ret in signatures(member["doc"]):
                        name = self.class_named(ret)
                        if name:
                            return name
            return None
        parts = chain(node)
        if parts is None:
            return None
        if parts[0] in self.aliases and len(parts) == 3 and parts[1] in self.classes:
            member = self.classes[parts[1]].get(parts[2])
            return parts[1] if member and member["kind"] == "value" else None
        return self.types.get(self.key(parts, node))

    def learn(self, tree: ast.Module) -> None:
        if not self.scope:
            self.scopes(tree)
        for _ in range(4):  # to a fixpoint through chains of assignments
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = chain(node.targets[0])
                    found = self.type_of(node.value)
                    if target and found:
                        self.types[self.key(target, node.targets[0])] = found
        for node in ast.walk(tree):  # hasattr(x, "name"): the source's own version checks
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "hasattr":
                self.guarded |= {id(n) for n in ast.walk(node)}

    def problem(self, node, text: str) -> None:
        self.problems.append(f"{self.where}:{node.lineno}: {text}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = chain(node)
        if parts and parts[0] in self.aliases and id(node) not in self.guarded:
            name = parts[1]
            self.used.add(".".join(parts[1:3]))
            if name not in self.classes and name not in self.functions and name != "__version__":
                self.problem(node, f"tensorrt has no {name!r}")
            elif len(parts) >= 3 and name in self.classes and parts[2] not in self.classes[name]:
                self.problem(node, f"tensorrt.{name} has no {parts[2]!r}")
            return  # the chain is checked whole
        owner = self.type_of(node.value)
        if owner and id(node) not in self.guarded:
            self.used.add(f"{owner}.{node.attr}")
            if node.attr not in self.classes[owner]:
                self.problem(node, f"tensorrt.{owner} has no {node.attr!r}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and id(node) not in self.guarded:
            owner = self.type_of(node.func.value)
            member = self.classes.get(owner or "", {}).get(node.func.attr)
            if member and member["kind"] == "callable" and member["doc"]:
                self.check_call(node, owner, node.func.attr, member["doc"])
        self.generic_visit(node)

    def check_call(self, node: ast.Call, owner: str, name: str, doc: str) -> None:
        given = len(node.args)
        keywords = {k.arg for k in node.keywords if k.arg}
        if any(isinstance(a, ast.Starred) for a in node.args):
            return
        for params, _ in signatures(doc):
            names = [p for p, _ in params]
            required = [p for p, has_default in params if not has_default]
            fits = (
                given <= len(params)
                and keywords <= set(names[given:])
                and set(required) <= set(names[:given]) | keywords
            )
            if fits:
                return
        self.problem(
            node,
            f"tensorrt.{owner}.{name} called with {given} positional and {sorted(keywords)} "
            f"keyword arguments; its signatures: {doc}",
        )


def uses_in(version: str) -> tuple[dict[str, Uses], dict]:
    api = bindings_api(version)
    sources = tensorrt_sources()
    checked = {where: Uses(api, module_aliases(tree), where) for where, tree in sources.items()}
    sites: dict[tuple[str, int], str] = {}
    for where, uses in checked.items():  # types, then what each call passes to whom
        uses.learn(sources[where])
        sites |= uses.call_sites(sources[where])
    for where, uses in checked.items():  # parameters typed from those calls, then checked
        uses.take_parameters(sources[where], sites)
        uses.learn(sources[where])
        uses.visit(sources[where])
    return checked, api


@pytest.mark.parametrize("version", VERSIONS)
def test_every_tensorrt_name_and_call_exists_in_the_real_bindings(version):
    checked, api = uses_in(version)
    assert api["__version__"] == version
    assert {"alexnet_deploy/engines/tensorrt.py", *LEGACY} <= set(checked)
    major = int(version.split(".")[0])
    problems = [
        p for where, uses in checked.items() if major == 10 or where not in LEGACY
        for p in uses.problems
    ]  # fmt: skip
    assert not problems, "\n".join(problems)
    # the walk typed the objects it must have (a typing gap would check nothing)
    used = set().union(*(u.used for u in checked.values()))
    for name in ("Builder.create_network", "IExecutionContext.execute_async_v3",
                 "IBuilderConfig.set_memory_pool_limit", "ICudaEngine.num_io_tensors",
                 "OnnxParser.get_error", "ParserError.code", "IBuilderConfig.clear_flag",
                 "BuilderFlag.TF32", "ICudaEngine.get_tensor_dtype",
                 "IExecutionContext.get_tensor_shape", "TensorIOMode.INPUT"):  # fmt: skip
        assert name in used, f"{name} not reached by the walk: {sorted(used)}"


def test_the_legacy_int8_path_is_gone_in_11_as_its_gate_assumes():
    checked, api = uses_in("11.4.0.106")
    legacy = checked[next(iter(LEGACY))]
    missing = {p.split(": ", 1)[1] for p in legacy.problems}
    assert "tensorrt has no 'IInt8EntropyCalibrator2'" in missing
    assert "tensorrt.BuilderFlag has no 'INT8'" in missing
    from alexnet_deploy.engines.tensorrt_api import api_for

    assert not api_for("11.4.0.106").legacy_int8 and api_for("10.13.0.35").legacy_int8


@pytest.mark.parametrize("version", VERSIONS)
def test_parser_error_codes_are_formatted_by_name(version):
    """``IParserError.code()`` returns an ErrorCode enum, whose str() in the real bindings is
    'ErrorCode.UNSUPPORTED_NODE': the message shows the name."""
    classes = bindings_api(version)["classes"]
    assert classes["ParserError"]["code"]["doc"].endswith("-> " + PREFIX + "ErrorCode")
    shown = run_with_bindings(
        version,
        "import tensorrt_bindings as trt\n"
        "from alexnet_deploy.engines.tensorrt_api import error_code_name\n"
        "code = trt.ErrorCode.UNSUPPORTED_NODE\n"
        "print(str(code)); print(error_code_name(code))",
    ).split()
    assert shown[0] != "UNSUPPORTED_NODE"  # what str() alone would have put in the message
    assert shown[1] == "UNSUPPORTED_NODE"


@pytest.mark.parametrize("version", VERSIONS)
def test_parser_errors_are_reported_node_by_node_with_the_real_codes(version):
    """The parser itself cannot run on stub libraries; its error records are stood in for by
    objects whose ``code()`` returns the real ErrorCode values (the members they call are checked
    against the real ParserError by the AST walk above)."""
    out = run_with_bindings(
        version,
        """
import tensorrt_bindings as trt
from types import SimpleNamespace
from alexnet_deploy.engines.tensorrt_api import format_parser_errors, parser_errors

def record(code, desc, node, name="", op=""):
    return SimpleNamespace(code=lambda: code, desc=lambda: desc, node=lambda: node,
                           node_name=lambda: name, node_operator=lambda: op)

errors = [record(trt.ErrorCode.UNSUPPORTED_NODE, "zero point must be 0", 12, "conv1_dq",
                 "DequantizeLinear"), record(trt.ErrorCode.INVALID_GRAPH, "no outputs", -1)]
parser = SimpleNamespace(num_errors=2, get_error=lambda i: errors[i])
print(format_parser_errors(parser_errors(parser), "m.onnx"))
""",
    )
    assert out.splitlines() == [
        "TensorRT's ONNX parser rejected m.onnx (2 error(s)):",
        "  - node 12 'conv1_dq' (DequantizeLinear): zero point must be 0 [UNSUPPORTED_NODE]",
        "  - graph: no outputs [INVALID_GRAPH]",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_tensor_types_map_to_buffer_types(version):
    """Every I/O tensor is bound with a buffer of its own type (a --softmax export has two
    outputs; an FP16 engine may keep FP16 I/O): the real DataType members by name."""
    shown = run_with_bindings(
        version,
        "import tensorrt_bindings as trt\n"
        "from alexnet_deploy.engines.tensorrt import torch_dtype_name\n"
        "for name in ('FLOAT', 'HALF', 'INT8', 'INT32', 'BOOL'):\n"
        "    print(name, torch_dtype_name(getattr(trt.DataType, name)))",
    )
    assert shown.split() == [
        "FLOAT", "float32", "HALF", "float16", "INT8", "int8", "INT32", "int32", "BOOL", "bool",
    ]  # fmt: skip
