"""``agent-guard policy check``: lint a policy (and sample plans) the way CI lints code.

Errors (exit 1): a file that does not load (bad YAML/JSON, a key written twice, a constraint that
does not compile, a tool listed twice), a constraint that admits no value at all (a literal its
own operators refuse), a ``sum_of`` limit no call can fit in, a sample plan the ceiling refuses.
Warnings (exit 0 unless ``--strict``): a glob or prefix on what looks like an address, URL or path
(the typed operators ``email_domain_in``, ``host_in``, ``path_prefix`` are the safe ones), a literal
that looks like a pattern (a literal is an exact match), a limit written twice, a capability no
sample plan uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

from agent_guard.authorization._constraints import compile_constraint, is_narrowing
from agent_guard.authorization._models import Capability, Plan, Policy
from agent_guard.authorization._scope import derive_scope
from agent_guard.exceptions import ConfigError, MissingDependencyError, PlanRejected

__all__ = ["Finding", "check_policy", "load_document"]

_ADDRESS_NAME: Final = re.compile(
    r"(^|_)(to|cc|bcc|from|sender|recipients?|e?mails?|address(es)?|reply_to)($|_)", re.IGNORECASE
)
_URL_NAME: Final = re.compile(r"(^|_)(urls?|uris?|links?|hosts?|hostname|domains?|endpoints?|webhooks?|site)($|_)",
                              re.IGNORECASE)
_PATH_NAME: Final = re.compile(r"(^|_)(paths?|files?|filename|dir|directory|folder)($|_)", re.IGNORECASE)
_PATTERN_LIKE: Final = re.compile(r"\*|\.\+|\\[dws]|\[[^\]]*-[^\]]*\]|^\^.*\$$")


class Finding(NamedTuple):
    """One problem found: ``error`` or ``warning``, where (file and field) and what, with the fix."""

    level: Literal["error", "warning"]
    where: str
    message: str


def load_document(path: Path) -> tuple[Any, list[str]]:
    """Parse a ``.yaml``/``.yml``/``.json`` file; returns the data and every key written twice in one object.

    Raises :class:`ConfigError` (the file cannot be read or parsed) naming the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from None
    duplicates: list[str] = []
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _load_yaml(text, path, duplicates), duplicates
    if suffix != ".json":
        raise ConfigError(f"{path}: use a .json, .yaml or .yml file")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(f"key {key!r} appears twice in one object (JSON keeps only the last)")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=pairs), duplicates
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None


def _load_yaml(text: str, path: Path, duplicates: list[str]) -> Any:
    try:
        import yaml
    except ImportError:
        raise MissingDependencyError("checking a YAML policy", "pip install 'agent-guard[yaml]'") from None

    class Loader(yaml.SafeLoader):
        """A safe loader that notes every mapping key written twice (YAML silently keeps the last)."""

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                duplicates.append(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping "
                                  "(YAML keeps only the last)")
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: builds plain data only
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None


def _literals(spec: Mapping[str, Any]) -> list[Any] | None:
    ops = set(spec) - {"optional"}
    if "eq" in ops:
        return [spec["eq"]]
    if "in" in ops:
        return list(spec["in"])
    return None


def _pattern_warnings(where: str, name: str, spec: Mapping[str, Any]) -> Iterator[Finding]:
    """A glob/prefix on an address, URL or path; a literal that reads like a pattern."""
    for op in ("glob", "prefix"):
        pattern = spec.get(op)
        if not isinstance(pattern, str):
            continue
        typed = None
        if "@" in pattern or _ADDRESS_NAME.search(name):
            typed = 'email_domain_in (e.g. {"email_domain_in": ["example.com"]})'
        elif "://" in pattern or _URL_NAME.search(name):
            typed = 'host_in (e.g. {"host_in": ["api.example.com"]})'
        elif pattern.startswith("/") or _PATH_NAME.search(name):
            typed = 'path_prefix (e.g. {"path_prefix": "/srv/data"})'
        if typed is not None:
            yield Finding("warning", where,
                          f"{op} {pattern!r} on what looks like an address, URL or path: a {op} also matches values "
                          f"such as 'mallory@evil.com,alice@example.com' or 'https://example.com.evil.com'; "
                          f"use the typed operator {typed}")
    for value in _literals(spec) or ():
        if isinstance(value, str) and _PATTERN_LIKE.search(value):
            yield Finding("warning", where,
                          f"the literal {value!r} looks like a pattern, but a literal is an exact match on those "
                          "characters; write {\"glob\": ...} for a pattern, or a typed operator "
                          "(email_domain_in, host_in, path_prefix)")


def _admits_nothing(spec: Mapping[str, Any]) -> bool:
    """True when the spec pins literals (eq/in) and its other operators refuse every one of them."""
    values = _literals(spec)
    rest = {op: v for op, v in spec.items() if op not in ("eq", "in", "optional")}
    if values is None or not is_narrowing(rest):
        return False
    check = compile_constraint(rest)
    return not any(check(v) for v in values)


def _capability_findings(i: int, cap: Capability) -> Iterator[Finding]:
    at = f"capabilities[{i}] ({cap.tool})"
    for name, spec in cap.args.items():
        where = f"{at}.args.{name}"
        compile_constraint(spec)  # normalized at load: compiles (a spec that did not would be a load error)
        if _admits_nothing(spec):
            yield Finding("error", where,
                          "admits no value: its literal fails its own other operators, so no call can pass this "
                          "argument; fix the literal or the operators")
        yield from _pattern_warnings(where, name, spec)
    seen = set()
    for j, limit in enumerate(cap.limits):
        where = f"{at}.limits[{j}]"
        if limit in seen:
            yield Finding("warning", where, "this limit is written twice; remove one")
        seen.add(limit)
        if limit.sum_of is None:
            continue
        spec = cap.args.get(limit.sum_of, {})
        least = spec.get("min", 0)
        values = _literals(spec)
        if values is not None and all(isinstance(v, (int, float)) for v in values):
            least = max(least, min(values))
        if isinstance(least, (int, float)) and least > (limit.max or 0):
            yield Finding("error", where,
                          f"no call fits: argument {limit.sum_of!r} is at least {least}, above the limit's max "
                          f"{limit.max}; the capability is unreachable")


def _raw_tools(data: Any) -> Iterator[Finding]:
    """A tool listed twice (reported before validation, which stops at the first)."""
    caps = data.get("capabilities") if isinstance(data, Mapping) else None
    if not isinstance(caps, list):
        return
    first: dict[str, int] = {}
    for i, cap in enumerate(caps):
        tool = cap.get("tool") if isinstance(cap, Mapping) else None
        if not isinstance(tool, str):
            continue
        if tool in first:
            yield Finding("error", f"capabilities[{i}] ({tool})",
                          f"the tool is already listed at capabilities[{first[tool]}]; merge the two entries")
        else:
            first[tool] = i


def _load_policy(path: Path, findings: list[Finding]) -> Policy | None:
    try:
        data, duplicates = load_document(path)
    except ConfigError as err:
        findings.append(Finding("error", str(path), str(err).removeprefix(f"{path}: ")))
        return None
    findings.extend(Finding("error", str(path), d) for d in duplicates)
    doubled = list(_raw_tools(data))
    findings.extend(doubled)
    if doubled and isinstance(data, Mapping):  # validate the rest, keeping each tool's first entry
        kept: dict[str, Any] = {}
        for cap in data["capabilities"]:
            tool = cap.get("tool") if isinstance(cap, Mapping) else None
            kept.setdefault(str(tool) if isinstance(tool, str) else f"#{len(kept)}", cap)
        data = {**data, "capabilities": list(kept.values())}
    try:
        return Policy.model_validate(data)
    except ConfigError as err:
        findings.append(Finding("error", str(path), str(err)))
        return None


def _plan_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError(f"--plans: {str(directory)!r} is not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in (".json", ".yaml", ".yml") and p.is_file())


def _plan_findings(path: Path, policy: Policy, used: set[str]) -> Iterator[Finding]:
    try:
        data, duplicates = load_document(path)
    except ConfigError as err:
        yield Finding("error", str(path), str(err).removeprefix(f"{path}: "))
        return
    for duplicate in duplicates:
        yield Finding("error", str(path), duplicate)
    try:
        plan = Plan.model_validate(data)
    except ConfigError as err:
        yield Finding("error", str(path), str(err))
        return
    for i, step in enumerate(plan.steps):
        used.add(step.tool)
        for name, spec in step.args.items():
            yield from _pattern_warnings(f"{path} steps[{i}] ({step.tool}).args.{name}", name, spec)
    try:
        derive_scope(plan, policy)
    except PlanRejected as refused:
        for v in refused.violations:
            what = f".args.{v.argument}" if v.argument else ""
            yield Finding("error", f"{path} steps[{v.step}] ({v.tool}){what}",
                          f"{v.reason}: {v.message} (the sample plan does not fit the ceiling)")


def check_policy(path: Path, plans: Path | None = None) -> list[Finding]:
    """Every finding for the policy at ``path`` (and the sample plans in the directory ``plans``)."""
    findings: list[Finding] = []
    policy = _load_policy(path, findings)
    if policy is None:
        return findings
    for i, cap in enumerate(policy.capabilities):
        findings.extend(_capability_findings(i, cap))
    if plans is not None:
        files = _plan_files(plans)
        if not files:
            findings.append(Finding("warning", str(plans), "holds no .json, .yaml or .yml plan to check"))
        used: set[str] = set()
        for file in files:
            findings.extend(_plan_findings(file, policy, used))
        for i, cap in enumerate(policy.capabilities):
            if files and cap.tool not in used:
                findings.append(Finding("warning", f"capabilities[{i}] ({cap.tool})",
                                        "no sample plan uses this capability; add a plan that does, or drop it"))
    return findings
