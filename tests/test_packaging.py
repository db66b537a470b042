"""Install metadata stays consistent: constraints.txt, environment.yml and pyproject.toml agree."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[norm(name)] = version
    return pins


def environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s+- ([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            pins[norm(m.group(1))] = m.group(2)
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_required_pins():
    pins = constraint_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["setuptools"] in SpecifierSet("<81")
    assert pins["librosa"] in SpecifierSet("==0.11.*")
    assert pins["flwr"] == "1.41.0"


def test_environment_yml_matches_constraints():
    env, pins = environment_pins(), constraint_pins()
    assert env, "environment.yml lists no pins"
    drift = {name: (v, pins.get(name)) for name, v in env.items() if pins.get(name) != v}
    assert not drift, f"environment.yml and constraints.txt disagree (env, constraints): {drift}"
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text and "-c constraints.txt" in text


def test_every_dependency_is_pinned_and_admitted_by_its_range():
    env, pins = environment_pins(), constraint_pins()
    for req in project_requirements():
        name = norm(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert name in env, f"{req.name} has no pin in environment.yml"
        assert pins[name] in req.specifier, f"pyproject range {req} excludes the tested pin {pins[name]}"


def test_installed_versions_are_the_pins():
    from importlib.metadata import version

    pins = constraint_pins()
    for dist in ("torch", "librosa", "numpy", "pyworld", "espeakng-loader", "nbval"):
        installed = version(dist).split("+")[0]
        assert installed == pins[norm(dist)], f"{dist} {installed} installed, {pins[norm(dist)]} pinned"
