"""Every INSERT in the product names its columns, so a migration that adds one breaks nothing."""

import ast
import re

from tests.conftest import ROOT

# ``INSERT INTO t (a, b) ...`` or DuckDB's ``INSERT INTO t BY NAME SELECT ... AS a, ...``.
INSERT = re.compile(r"\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)\s*(\(|BY\s+NAME\b)?", re.IGNORECASE)
SOURCE_DIRS = ("awaknow", "devtools")


def _sql_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals and f-strings (a ``{}`` per placeholder) with their line numbers."""
    found: list[tuple[int, str]] = []
    f_string_parts = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in f_string_parts:
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
            )
            found.append((node.lineno, text))
    return found


def inserts_without_columns(source: str) -> list[tuple[int, str]]:
    """(line, table) of each INSERT in ``source`` that lists no columns."""
    return [
        (line, match.group(1))
        for line, text in _sql_strings(ast.parse(source))
        for match in INSERT.finditer(text)
        if match.group(2) is None
    ]


def test_the_scanner_tells_named_from_positional_inserts() -> None:
    positional = 'q = "INSERT INTO users VALUES (?, ?)"\nr = f"INSERT INTO t SELECT {x}"\n'
    assert inserts_without_columns(positional) == [(1, "users"), (2, "t")]
    named = (
        'q = "INSERT INTO users (user_id, name) VALUES (?, ?)"\n'
        'r = "INSERT INTO users BY NAME SELECT 1 AS user_id"\n'
        's = f"INSERT INTO rollup ({COLUMNS}, n) SELECT 1"\n'
        't = ("INSERT INTO users "\n     "(user_id) VALUES (?)")\n'
    )
    assert inserts_without_columns(named) == []


def test_every_insert_in_the_product_names_its_columns() -> None:
    files = [path for folder in SOURCE_DIRS for path in sorted((ROOT / folder).rglob("*.py"))]
    assert files, "no source files found"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} INSERT INTO {table}"
        for path in files
        for line, table in inserts_without_columns(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "list the columns: " + ", ".join(offenders)
