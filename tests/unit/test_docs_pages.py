"""The docs site quotes the messages ganfriends really prints: every line of a ```text block on
the troubleshooting page is a message of the source (a Python string or f-string, or a
PostgreSQL function's RAISE), with example values where the code fills in its own. The README
stays a short front page whose links lead to files that exist."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "src" / "ganfriends"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
FILLED = "(.+?)"  # what the code fills in: a name, a number, another message
MIN_FIXED = 20  # characters of a message's own text: "error: {exc}" alone proves nothing
MARKUP = re.compile(r"\[/?(?:bold |dim )?(?:yellow|red|green|cyan|bold|dim)?\]")  # Rich styles
SQL_RAISE = re.compile(r"RAISE EXCEPTION\s+((?:'(?:[^']|'')*'\s*)+)")


def _pattern(parts: list[str | None]) -> tuple[re.Pattern[str], int]:
    """A message's regex (None parts are filled in by the code) and its own text's length."""
    fixed = [MARKUP.sub("", p) if p is not None else None for p in parts]
    regex = "".join(FILLED if p is None else re.escape(p) for p in fixed)
    return re.compile(regex, re.DOTALL), sum(len(p) for p in fixed if p is not None)


def _text(node: ast.expr) -> str | None:
    """An f-string part's own text; None for what the code fills in."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _python_messages(tree: ast.AST) -> list[list[str | None]]:
    messages: list[list[str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            messages.append([_text(v) for v in node.values])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            messages.append([node.value])
    return messages


def _sql_messages(text: str) -> list[list[str | None]]:
    messages: list[list[str | None]] = []
    for raise_ in SQL_RAISE.finditer(text):
        literal = "".join(re.findall(r"'((?:[^']|'')*)'", raise_.group(1))).replace("''", "'")
        pieces: list[str | None] = []
        for i, piece in enumerate(literal.split("%")):
            pieces += [None, piece] if i else [piece]
        messages.append(pieces)
    return messages


@functools.cache
def source_messages() -> tuple[tuple[re.Pattern[str], int], ...]:
    """Every message the source can print, as (regex, length of its own text)."""
    messages = []
    for path in sorted(SOURCE.rglob("*.py")):
        messages += _python_messages(ast.parse(path.read_text(encoding="utf-8")))
    for path in sorted(SOURCE.rglob("*.sql")):
        messages += _sql_messages(path.read_text(encoding="utf-8"))
    return tuple(_pattern(parts) for parts in messages)


def quoted_lines(page: Path) -> list[str]:
    """The lines of the page's ```text blocks."""
    blocks = re.findall(r"^```text\n(.*?)^```$", page.read_text(encoding="utf-8"), re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def printed_by_the_source(line: str) -> bool:
    # The CLI's one error funnel adds "error: " to a GanError's message.
    messages = {line, line.removeprefix("error: ")}
    return any(
        fixed >= MIN_FIXED and any(pattern.fullmatch(m) for m in messages)
        for pattern, fixed in source_messages()
    )


def test_the_troubleshooting_page_quotes_only_messages_of_the_source() -> None:
    lines = quoted_lines(TROUBLESHOOTING)
    assert len(lines) >= 20  # the page is built from them
    assert [line for line in lines if not printed_by_the_source(line)] == []


def test_a_message_the_source_does_not_print_is_caught() -> None:
    assert printed_by_the_source("error: another coordinator is already running run 2")
    assert not printed_by_the_source("error: another coordinator already runs run 2")
    assert printed_by_the_source(
        "bob already has 8 live workers in run 3 (stop one first)"  # from functions.sql
    )


def test_the_readme_links_only_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", readme)
    assert "docs/instructor.md" in targets and "docs/student.md" in targets
    assert [t for t in targets if not (ROOT / t).is_file()] == []


def test_the_readme_stays_a_front_page() -> None:
    # What it is, the two commands, a picture and the docs' pages: the rest lives in docs/.
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 60
