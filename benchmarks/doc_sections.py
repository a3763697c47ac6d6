"""Several benchmarks write one Markdown file: each owns one part and leaves the others alone."""

from __future__ import annotations

from pathlib import Path


def measured_header(title: str, info: dict, command: str) -> list[str]:
    """The opening lines of a generated benchmark file: title, where and with what it was
    measured (``info`` as ``bench_engine.machine()`` returns it), and the command to rerun."""
    return [
        f"# {title}",
        "",
        f"Measured on {info['date']} on this project's {info['cores']}-core machine ({info['cpu']}), "
        f"Python {info['python']}, scikit-learn {info['scikit-learn']}. Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
    ]


def write_section(doc: Path, heading: str | None, body: str) -> None:
    """Replace the ``## heading`` section of ``doc`` (or, with None, the part before the first
    section) by ``body``, keeping every other part; a new section goes at the end."""
    text = doc.read_text() if doc.exists() else ""
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + p for p in parts[1:]]
    if heading is None:
        head = body.rstrip("\n")
    else:
        new = f"## {heading}\n\n{body.strip()}"
        names = [s.splitlines()[0][3:] for s in sections]
        if heading in names:
            sections[names.index(heading)] = new
        else:
            sections.append(new)
    doc.write_text("\n\n".join([head.rstrip("\n")] + [s.rstrip("\n") for s in sections]) + "\n")


def read_section(doc: Path, heading: str) -> str | None:
    """The body of the ``## heading`` section of ``doc`` (without its heading), or None."""
    if not doc.exists():
        return None
    for part in doc.read_text().split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        if title == heading:
            return body.strip()
    return None
