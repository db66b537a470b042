"""One name for the sample rate: signatures say ``sample_rate`` (never ``sr``), and no default spells
out 22050 Hz (defaults use ``ttslab.dsp.spectral.SAMPLE_RATE``, the one source of the rate)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ttslab"
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _parameters(function) -> list[ast.arg]:
    args = function.args
    return [a for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg) if a is not None]


def _is_22050(node) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 22050


def _where(function) -> str:
    return getattr(function, "name", "lambda")


def sr_parameters(source: str) -> list[str]:
    """``line: function(sr)`` for every parameter named ``sr``."""
    return [f"{node.lineno}: {_where(node)}({arg.arg})" for node in ast.walk(ast.parse(source))
            if isinstance(node, FUNCTIONS) for arg in _parameters(node) if arg.arg == "sr"]


def literal_sample_rate_defaults(source: str) -> list[str]:
    """``line: where`` for every 22050 written as a parameter default or a class field's default."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, FUNCTIONS):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            found += [f"{d.lineno}: default of {_where(node)}()" for d in defaults if _is_22050(d)]
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                value = statement.value if isinstance(statement, (ast.AnnAssign, ast.Assign)) else None
                if value is None:
                    continue
                # a plain default, or dataclasses.field(default=22050)
                candidates = [value] + ([k.value for k in value.keywords if k.arg == "default"]
                                        if isinstance(value, ast.Call) else [])
                found += [f"{statement.lineno}: field of {node.name}" for c in candidates if _is_22050(c)]
    return found


def _scan(check) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{hit}" for path in sorted(PACKAGE.rglob("*.py"))
            for hit in check(path.read_text(encoding="utf-8"))]


def test_no_signature_calls_the_sample_rate_sr():
    found = _scan(sr_parameters)
    assert not found, "name the parameter sample_rate:\n" + "\n".join(found)


def test_no_default_spells_out_22050():
    found = _scan(literal_sample_rate_defaults)
    assert not found, "use ttslab.dsp.spectral.SAMPLE_RATE:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for():
    probe = (
        "from dataclasses import dataclass, field\n"
        "def f(x, sr: int = 22050): ...\n"
        "def g(x, *, sample_rate=22050.0, **sr): ...\n"
        "h = lambda sr: sr\n"
        "class Method:\n"
        "    def resample(self, x, sample_rate=SAMPLE_RATE, hop=22050 // 100): ...\n"
        "@dataclass\n"
        "class Config:\n"
        "    sample_rate: int = 22050\n"
        "    rate: int = field(default=22050)\n"
        "    hop: int = 256\n"
        "RATE = 22050\n"
    )
    assert sr_parameters(probe) == ["2: f(sr)", "3: g(sr)", "4: lambda(sr)"]
    assert literal_sample_rate_defaults(probe) == ["2: default of f()", "3: default of g()", "9: field of Config",
                                                   "10: field of Config"]
