"""Markdown tables shared by the attack commands: one row per (model, setting), one column per metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def format_number(value: float | None) -> str:
    if value is None:
        return "–"
    # Probabilities and p-values can be tiny; accuracies are not.
    return f"{value:.1e}" if value != 0 and abs(value) < 1e-3 else f"{value:.3f}"


def write_attack_table(
    path: Path, title: str, intro: str, rows: dict[str, dict[str, dict[str, Any]]], columns: tuple[str, ...]
) -> Path:
    """`rows[model][setting][metric]` as a markdown table (model `oracle` last, as the reference)."""
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        "| model | setting | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for model in sorted(rows, key=lambda name: name == "oracle"):
        for setting, values in rows[model].items():
            cells = " | ".join(format_number(values.get(column)) for column in columns)
            lines.append(f"| `{model}` | {setting} | {cells} |")
    path.write_text("\n".join(lines) + "\n")
    return path
