"""Command line for the prior zoo.

    python -m priors list
    python -m priors train NAME [--steps N] [--out DIR] [--resume] [--threads T] [--no-progress]
    python -m priors card NAME [--out DIR]     # re-measure the quality checks, rewrite NAME.json / NAME.md

`train` reproduces a bundled prior from scratch from its recipe (seeded), checkpointing as it goes,
and writes NAME.safetensors, NAME.json, NAME.md and NAME_loss.png into --out (copy them into
priors/bundled/ to ship them). Under torchrun (`torchrun --nproc_per_node 2 -m priors train NAME`) the
processes share each global batch and give the single-process loss curve (priors.training.distributed).
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _list() -> int:
    from .zoo import RECIPES, read_bundle_metadata

    for name, r in sorted(RECIPES.items()):
        try:
            tr = read_bundle_metadata(name)["training"]
            status = f"bundled: {tr['steps']} steps, loss {tr['final_loss']:.4g}"
        except (FileNotFoundError, ValueError):
            status = "not bundled"
        print(f"{name:22s} {r.data.family.value:9s} {type(r.objective).__name__:26s} {status}")
        if r.description:
            print(f"{'':22s} {r.description}")
    return 0


def _train(args) -> int:
    import torch

    from .training.distributed import distributed_run
    from .zoo import train_recipe

    torch.set_num_threads(args.threads)
    parts = ["python", "-m", "priors", "train", args.name]
    if args.steps is not None:
        parts += ["--steps", str(args.steps)]
    with distributed_run() as distributed:  # None unless started by torchrun
        path = train_recipe(
            args.name,
            args.out,
            steps=args.steps,
            resume=args.resume,
            progress=not args.no_progress,
            command=" ".join(shlex.quote(p) for p in parts),
            distributed=distributed,
        )
    if distributed is None or distributed.is_main:
        print(f"wrote {path.with_suffix('.safetensors')}, {path}, {path.with_suffix('.md')}")
    return 0


def _card(args) -> int:
    import torch

    from .zoo import refresh_card

    torch.set_num_threads(args.threads)
    print(f"wrote {refresh_card(args.name, args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m priors", description="Bundled priors: list and train.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the recipes and what is bundled")
    train = commands.add_parser("train", help="train a recipe from scratch (or resume) into --out")
    train.add_argument("name", help="a recipe name (see `list`)")
    train.add_argument("--steps", type=int, default=None, help="override the recipe's number of steps")
    train.add_argument("--out", default="zoo-runs", help="output directory (default: ./zoo-runs)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    train.add_argument("--threads", type=int, default=1, help="torch threads (default 1: best on a shared CPU)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    card = commands.add_parser("card", help="re-measure the quality checks of a bundle in --out, rewrite its card")
    card.add_argument("name", help="a recipe name (see `list`)")
    card.add_argument("--out", default="zoo-runs", help="the bundle's directory (default: ./zoo-runs)")
    card.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    from .zoo import names

    if args.name not in names():
        parser.error(f"unknown prior {args.name!r}; available: {', '.join(names())}")
    return _train(args) if args.command == "train" else _card(args)


if __name__ == "__main__":
    sys.exit(main())
