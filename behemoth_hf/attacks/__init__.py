"""Robustness attacks on unlearned models: `behemoth attack relearn|quantize` (format probes: `evaluate --probes`)."""

from __future__ import annotations

from pathlib import Path


def attack_command(argv: list[str]) -> int:
    """Attack unlearned models: `relearn` (benign fine-tuning) or `quantize` (8/4-bit round trip)."""
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.attacks.quantize import QuantizeArguments, run_quantize
    from behemoth_hf.attacks.relearn import RelearnArguments, run_relearn

    attacks = {"relearn": (RelearnArguments, run_relearn), "quantize": (QuantizeArguments, run_quantize)}
    if not argv or argv[0] not in attacks:
        got = argv[0] if argv else "nothing"
        raise ValueError(f"`behemoth attack` needs an attack: {' or '.join(attacks)} (got {got})")
    arguments_class, run = attacks[argv[0]]
    (args,) = parse_dataclasses((arguments_class,), argv[1:], prog=f"behemoth attack {argv[0]}")
    run(args)
    table = Path(args.output_dir) / f"{argv[0]}.md"
    print(table.read_text())
    print(f"table: {table}")
    return 0
