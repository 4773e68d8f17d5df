"""The code registry, and docs/migration.md generated from it."""

from __future__ import annotations

import re
from pathlib import Path

from parallel_isolation.migrate import CODES, codes_markdown

DOCS = Path(__file__).resolve().parents[3] / "docs" / "migration.md"


def test_codes_are_well_formed() -> None:
    names = [code.name for code in CODES.values()]
    assert len(set(names)) == len(names)
    for key, code in CODES.items():
        assert key == code.code
        assert re.fullmatch(r"PI\d{3}", key)
        assert code.severity in ("error", "warning")
        assert code.autofix in ("yes", "partly", "no")
        for text in (code.summary, code.why, code.fix):
            assert text.strip()
            assert "\n" not in text


def test_docs_list_every_code_with_what_why_and_fix() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for code in CODES.values():
        assert f"### {code.code} {code.name}" in text
        assert code.why in text
        assert code.fix in text


def test_docs_codes_section_is_generated_from_the_registry() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- codes:begin -->\n", 1)[1].split("<!-- codes:end -->", 1)[0]
    assert block == codes_markdown(), (
        "regenerate with: python -m parallel_isolation.migrate --codes-markdown"
    )


def test_docs_name_every_command() -> None:
    from parallel_isolation.migrate import COMMANDS

    text = DOCS.read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"`{command.__name__}`" in text
        assert command.DESCRIPTION.strip()
