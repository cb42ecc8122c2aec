"""One-line messages for bad input to ``python -m metarl`` (docs/reliability.md, "Bad input").

jsonargparse reports a bad key or value as a chain of nested exceptions, several lines each, with
the usage text in front. This finds the key path and the innermost problem in that chain, and adds
a did-you-mean (or the allowed keys) for an unknown key.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

_PARSER_KEY = re.compile(r'^Parser key "([^"]+)":')
_CLASS_PROBLEM = re.compile(r"^Problem with given class_path '([\w.]+)':")
_GOT_CLASS = re.compile(r"Got value: Namespace\(.*class_path='([\w.]+)'")
_NOT_ACCEPTED = re.compile(r"^Option '([^']+)' is not accepted")
_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (.*)")
_NO_ACTION = re.compile(r'No action for key "([^"]+)"')
_NOT_ACCEPTED_BY_SUBCOMMAND = re.compile(r"does not accept option '([^']+)'")
_UNION = re.compile(r"^Does not validate against any of the Union subtypes\s+Subtypes: \[(.*)\][ \t]*$", re.M)
_WRAPPERS = ("Does not validate against", "Problem with given class_path", "Parser key ")


class ConfigError(ValueError):
    """Bad input, with a one-line message naming the key or value and what is allowed."""


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def innermost_error(err: BaseException) -> BaseException:
    return _chain(err)[-1]


def _class_keys(class_path: str) -> list[str]:
    """The keys a class accepts in its ``init_args``, as jsonargparse sees them."""
    from jsonargparse import ArgumentParser

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, fail_untyped=False)
    except Exception:  # only a hint: a class that cannot be introspected gives no suggestions
        return []
    return _option_keys(parser)


def _option_keys(parser: Any) -> list[str]:
    keys = {o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")}
    return sorted(k for k in keys if k != "help" and not k.endswith((".help", "+")))


def unknown_key_message(key: str, candidates: list[str], prefix: str = "") -> str:
    full = f"{prefix}{key}"
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if close:
        hint = " or ".join(prefix + c for c in close)
        return f"unknown key {full}; did you mean {hint}?"
    top = sorted({c.split(".")[0] for c in candidates}) if "." not in key else candidates
    shown = ", ".join(prefix + c for c in top[:15]) + (", ..." if len(top) > 15 else "")
    return f"unknown key {full}; allowed: {shown}" if top else f"unknown key {full}"


def _tidy(message: str) -> str:
    message = re.sub(r"<class '([\w.]+)'>", r"\1", message.strip())
    # PyYAML names the text it parsed, not where it came from.
    message = message.replace('in "<unicode string>", ', "")
    message = re.sub(r"^Expected a (\S+)\. Got value: (.*)$", r"expected \1, got \2", message, flags=re.S)
    return " ".join(message.split())


def _split_top_level(text: str) -> list[str]:
    """``a, b[c, d], e`` -> ``[a, b[c, d], e]``: commas inside brackets do not split."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += 1 if ch in "[(" else -1 if ch in "])" else 0
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()] if cur.strip() else parts


def describe_parse_error(err: BaseException, top_parser: Any | None = None) -> str:
    """A one-line message for a jsonargparse parse error (``top_parser``: the subcommand's parser,
    whose keys are the candidates for an unknown top-level key)."""
    path: list[str] = []
    class_path: str | None = None
    innermost = ""
    union: str | None = None  # the allowed types, when the innermost key is typed as a Union
    for exc in _chain(err):
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        if m := _PARSER_KEY.match(first):
            if not path or path[-1] != m.group(1):
                path.append(m.group(1))
                union = None
        elif m := _CLASS_PROBLEM.match(first):
            class_path = m.group(1)
            path.append("init_args")
            union = None
        elif m := _UNION.match(text):
            union = " or ".join(_tidy(t).replace("NoneType", "null") for t in _split_top_level(m.group(1)))
        elif not first.startswith(_WRAPPERS):
            if (m := _GOT_CLASS.search(first)) and path and path[-1] != "init_args":
                class_path = m.group(1)
                path.append("init_args")
            innermost = text
    innermost = innermost or str(err)
    prefix = ".".join(path) + "." if path else ""

    if union and innermost.startswith("Expected a "):
        innermost = f"expected {union}, got {innermost.split('Got value: ', 1)[-1]}"
    unknown = None
    if m := (_NOT_ACCEPTED.search(innermost) or _NO_ACTION.search(innermost)
             or _NOT_ACCEPTED_BY_SUBCOMMAND.search(innermost)):
        unknown = m.group(1)
    elif m := _UNRECOGNIZED.match(innermost):
        options = [a for a in m.group(1).split() if a.startswith("--")]
        unknown = options[0][2:].split("=", 1)[0] if options else None
    if unknown is not None:
        if class_path is not None:
            candidates = _class_keys(class_path)
        else:
            candidates = _option_keys(top_parser) if top_parser is not None else []
        return unknown_key_message(unknown, candidates, prefix)
    where = ".".join(path)
    return f"{where}: {_tidy(innermost)}" if where else _tidy(innermost)


def describe_instantiation_error(err: BaseException) -> str:
    """The innermost message of an error raised while building the model, trainer or callbacks
    (metarl's own checks name the key and what is allowed)."""
    for exc in reversed(_chain(err)):
        text = str(exc).strip()
        if text and not text.startswith(_WRAPPERS):
            return _tidy(text.splitlines()[0]) if "Given value" in text else _tidy(text)
    return _tidy(str(err))
