"""Command line for the prior zoo.

    python -m priors list                      # each prior: its kind, the solvers and the task it fits
    python -m priors train NAME [--steps N] [--out DIR] [--resume] [--threads T] [--no-progress]
    python -m priors train NAME --images PATH [--like RECIPE] [--size S] [--crop C] [--out DIR]
    python -m priors card NAME [--out DIR]     # re-measure the quality checks, rewrite NAME.json / NAME.md

`train` reproduces a bundled prior from scratch from its recipe (seeded), checkpointing as it goes,
and writes NAME.safetensors, NAME.json, NAME.md and NAME_loss.png into --out (copy them into
priors/bundled/ to ship them). With --images it trains a new prior NAME on your own images (a folder
or a stack of MRC/TIFF/NPY/PNG) with the network, objective and optimisation of the recipe --like;
`python -m solvers reconstruct ... --prior DIR/NAME.safetensors` uses it, NAME.md is its model card.
Under torchrun (`torchrun --nproc_per_node 2 -m priors train NAME`) the processes share each global
batch and give the single-process loss curve (priors.training.distributed).
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _list() -> int:
    from .zoo import RECIPES, read_bundle_metadata
    from .zoo.fits import fit_of_recipe

    for name, r in sorted(RECIPES.items()):
        try:
            tr = read_bundle_metadata(name)["training"]
            status = f"bundled: {tr['steps']} steps, loss {tr['final_loss']:.4g}"
        except (FileNotFoundError, ValueError):
            status = "not bundled"
        fit = fit_of_recipe(r)
        print(f"{name:22s} {r.data.family.value:9s} {r.data.size}x{r.data.size} {fit.kind.value:28s} {status}")
        print(f"{'':22s} solvers: {', '.join(fit.solvers)}; task: {fit.task}")
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
    own = None
    if args.images is not None:
        from .zoo.own import own_recipe

        own = own_recipe(args.name, args.images, like=args.like, size=args.size, crop=args.crop)
        parts += ["--images", str(args.images), "--like", args.like, "--size", str(own.data.size)]
        if own.data.crop is not None:
            parts += ["--crop", str(own.data.crop)]
        print(f"training {args.name!r} on {own.data.describe()}")
    with distributed_run() as distributed:  # None unless started by torchrun
        path = train_recipe(
            args.name,
            args.out,
            steps=args.steps,
            resume=args.resume,
            progress=not args.no_progress,
            command=" ".join(shlex.quote(p) for p in parts),
            recipe_value=own,
            distributed=distributed,
        )
    if distributed is None or distributed.is_main:
        print(f"wrote {path.with_suffix('.safetensors')}, {path}, {path.with_suffix('.md')}")
        if own is not None:
            print(f"use it with: python -m solvers reconstruct ... --prior {path.with_suffix('.safetensors')}")
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
    own = train.add_argument_group("a prior of your own images")
    own.add_argument("--images", help="a folder or a stack (MRC/TIFF/NPY/PNG) of your images; NAME is then a new name")
    own.add_argument("--like", default="cells-conditional", help="the recipe whose network and training to use")
    own.add_argument("--size", type=int, default=None, help="tile side cut from the images (default: the recipe's)")
    own.add_argument("--crop", type=int, default=None, help="random crop side in training (default: the recipe's)")
    card = commands.add_parser("card", help="re-measure the quality checks of a bundle in --out, rewrite its card")
    card.add_argument("name", help="a recipe name (see `list`)")
    card.add_argument("--out", default="zoo-runs", help="the bundle's directory (default: ./zoo-runs)")
    card.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    from .zoo import names

    own_images = getattr(args, "images", None) is not None
    if own_images:
        try:
            return _train(args)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.name not in names():
        parser.error(f"unknown prior {args.name!r}; available: {', '.join(names())}")
    return _train(args) if args.command == "train" else _card(args)


if __name__ == "__main__":
    sys.exit(main())
