"""Robustness attacks on unlearned models: `behemoth attack relearn|quantize` (format probes: `evaluate --probes`)."""

from __future__ import annotations

import argparse
from pathlib import Path


ATTACKS = {
    "relearn": "fine-tune briefly on benign data and watch the forgotten facts return",
    "quantize": "round-trip the weights through 8- or 4-bit quantization",
}


def attack_command(argv: list[str]) -> int:
    """Attack unlearned models: `relearn` (benign fine-tuning) or `quantize` (8/4-bit round trip)."""
    parser = argparse.ArgumentParser(
        prog="behemoth attack",
        usage=f"%(prog)s [-h] {{{','.join(ATTACKS)}}} [ARGUMENTS ...]",
        description=attack_command.__doc__,
        epilog="`behemoth attack ATTACK --help` lists the attack's arguments.",
    )
    parser.add_argument("attack", choices=list(ATTACKS), help="; ".join(f"{k}: {v}" for k, v in ATTACKS.items()))
    # Only the attack name here: its own parser reads (and documents) everything after it.
    attack = parser.parse_args(argv[:1]).attack
    if attack == "quantize":
        from behemoth_hf.cli import single_process_only

        single_process_only("attack quantize")

    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.attacks.quantize import QuantizeArguments, run_quantize
    from behemoth_hf.attacks.relearn import RelearnArguments, run_relearn

    runners = {"relearn": (RelearnArguments, run_relearn), "quantize": (QuantizeArguments, run_quantize)}
    arguments_class, run = runners[attack]
    (args,) = parse_dataclasses((arguments_class,), argv[1:], prog=f"behemoth attack {attack}")
    run(args)
    from behemoth_hf.cli import main_process_print

    table = Path(args.output_dir) / f"{attack}.md"
    main_process_print(f"{table.read_text()}\ntable: {table}")
    return 0
