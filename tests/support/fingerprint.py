"""The structure of rendered config files, to prove a value a user passed added nothing.

usage: fingerprint.py FORMAT:PATH ...   prints one JSON list per file: its structure.

yaml, json: every key path (a value's text is not structure). lines: the key of every
logical line (Java .properties continuation lines joined), comments and blank lines left out.
"""
import json
import re
import sys

import yaml


def paths(value, prefix=""):
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.append(f"{prefix}/{key}")
            out.extend(paths(item, f"{prefix}/{key}"))
        return out
    if isinstance(value, list):
        out = [f"{prefix}[{len(value)}]"]
        for i, item in enumerate(value):
            out.extend(paths(item, f"{prefix}[{i}]"))
        return out
    return []


def logical_lines(text):
    lines, pending = [], ""
    for raw in text.split("\n"):
        line = pending + raw.lstrip() if pending else raw
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = line[:-1]
            continue
        pending = ""
        lines.append(line)
    if pending:
        lines.append(pending)
    return lines


def keys(text):
    out = []
    for line in logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;!":
            continue
        out.append(re.split(r"[=:\s]", stripped, maxsplit=1)[0])
    return out


for arg in sys.argv[1:]:
    kind, path = arg.split(":", 1)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if kind == "yaml":
        print(json.dumps(sorted(paths(yaml.safe_load(text)))))
    elif kind == "json":
        print(json.dumps(sorted(paths(json.loads(text)))))
    elif kind == "lines":
        print(json.dumps(keys(text)))
    else:
        raise SystemExit(f"unknown format {kind}")
