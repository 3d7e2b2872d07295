"""The README's Python examples run, in order, in one namespace (documentation that cannot rot)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_both_commands_first():
    text = README.read_text()
    commands = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert "# run the main job" in commands and "# run the tests" in commands
    assert "python -m solvers demo" in commands and "python -m pytest" in commands


def test_readme_examples_run():
    pytest.importorskip("deepinv")
    pytest.importorskip("pylops")
    blocks = python_blocks()
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
