"""A tiny document model rendered twice: self-contained HTML and Markdown with the same tables.

Paragraph text supports two inline marks, ``code`` and **bold**; everything else is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    name: str  # file stem under charts/ for the Markdown copy
    png: bytes
    alt: str


@dataclass(frozen=True)
class Quote:
    text: str
    cite: str = ""


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


Block = str | Table | Image | Quote | Bullets


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)


_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def _inline_html(text: str) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        out.append(
            f"<code>{html.escape(m.group(1))}</code>"
            if m.group(1)
            else f"<b>{html.escape(m.group(2))}</b>"
        )
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2733;background:#f6f8fa}
main{max-width:1240px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{margin:0 0 4px;font-size:28px}h2{margin-top:36px;border-bottom:2px solid #e3e8ee;padding-bottom:4px}
.sub{color:#5b6b7b;margin:0 0 16px}
nav{font-size:14px;margin:8px 0 20px;line-height:1.9}nav a{margin-right:14px;color:#0366d6;text-decoration:none}
table{border-collapse:collapse;margin:10px 0 18px;font-size:13.5px}
th,td{border:1px solid #d8dee4;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f0f3f6}tr:nth-child(even) td{background:#fafbfc}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0;color:#35424f}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f0f3f6;padding:1px 4px;border-radius:3px;font-size:90%}
blockquote{margin:8px 0 12px;padding:6px 14px;border-left:4px solid #f0b429;background:#fffbea}
blockquote cite{display:block;color:#6b5900;font-size:12.5px;font-style:normal;margin-top:4px}
img{max-width:100%;margin:6px 0 14px;border:1px solid #e3e8ee}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.figs img{max-width:calc(50% - 8px)}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
"""
_NUM = re.compile(r"^[+\-−]?\d[\d,]*(\.\d+)? ?(%|s|MB)?$")  # 12.5 / +3% / 8 s, not 3.11.7


def _cell_html(text: str, tag: str) -> str:
    cls = ""
    if tag == "td":
        if _NUM.match(text.strip()):
            cls = ' class="num"'
        elif text.startswith("✓"):
            cls = ' class="ok"'
        elif text.startswith("✗"):
            cls = ' class="bad"'
    return f"<{tag}{cls}>{_inline_html(text)}</{tag}>"


def to_html(doc: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body><main>",
        f'<h1>{html.escape(doc.title)}</h1><p class="sub">{_inline_html(doc.subtitle)}</p>',
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
        + "</nav>",
    ]
    for section in doc.sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        parts.extend(_blocks_html(section.blocks))
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _blocks_html(blocks: list[Block]) -> list[str]:
    """Blocks as HTML; consecutive images share a row (two charts side by side)."""
    out: list[str] = []
    row: list[str] = []
    for block in blocks:
        if isinstance(block, Image):
            row.append(_block_html(block))
            continue
        if row:
            out.append(row[0] if len(row) == 1 else f'<div class="figs">{"".join(row)}</div>')
            row = []
        out.append(_block_html(block))
    if row:
        out.append(row[0] if len(row) == 1 else f'<div class="figs">{"".join(row)}</div>')
    return out


def _block_html(block: Block) -> str:
    if isinstance(block, str):
        return f"<p>{_inline_html(block)}</p>"
    if isinstance(block, Table):
        caption = f"<caption>{_inline_html(block.caption)}</caption>" if block.caption else ""
        head = "".join(_cell_html(h, "th") for h in block.headers)
        body = "".join(
            "<tr>" + "".join(_cell_html(c, "td") for c in row) + "</tr>" for row in block.rows
        )
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Quote):
        cite = f"<cite>{_inline_html(block.cite)}</cite>" if block.cite else ""
        return f"<blockquote>{_inline_html(block.text)}{cite}</blockquote>"
    return "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.items) + "</ul>"


def to_markdown(doc: Document, charts_dir: Path | None = None) -> str:
    """Markdown; images are written to ``charts_dir`` and linked relatively (when given)."""
    lines = [f"# {doc.title}", "", doc.subtitle, ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block_md(block, charts_dir)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _block_md(block: Block, charts_dir: Path | None) -> list[str]:
    if isinstance(block, str):
        return [block]
    if isinstance(block, Table):
        out = [f"*{block.caption}*", ""] if block.caption else []
        out.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
        out.append("|" + "|".join("---" for _ in block.headers) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return out
    if isinstance(block, Image):
        if charts_dir is None:
            return []
        charts_dir.mkdir(parents=True, exist_ok=True)
        (charts_dir / f"{block.name}.png").write_bytes(block.png)
        return [f"![{block.alt}]({charts_dir.name}/{block.name}.png)"]
    if isinstance(block, Quote):
        return [f"> {block.text}", *([f"> — {block.cite}"] if block.cite else [])]
    return [f"- {item}" for item in block.items]
