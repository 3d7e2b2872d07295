"""The command line: `demo` (the DDGM comparison) and `reconstruct` (a real tilt series).

    python -m solvers demo [--size 64] [--output out/demo]
    python -m solvers demo --task qpi           # CVDM's task: phase from defocus (TIE)
    python -m solvers reconstruct series.mrc --angles series.rawtlt --solver ddgm --output volume.mrc
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import io

SOLVERS = ("ddgm", "ddrm", "dps", "algebraic", "fbp")
DEFAULT_PRIOR = {"ddgm": "ddgm-cells", "ddrm": "cells-conditional", "dps": "cells-conditional"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m solvers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the DDGM comparison on a held-out test image")
    demo.add_argument("--output", type=Path, default=Path("out/demo"), help="folder for the figure and tables")
    demo.add_argument("--task", choices=("tomography", "qpi"), default="tomography",
                      help="tomography: the DDGM comparison; qpi: CVDM's phase-from-defocus comparison")
    demo.add_argument("--size", type=int, default=64, help="image side (128 is the DDGM paper's; slower first run)")
    demo.add_argument("--views", type=int, default=128)
    demo.add_argument("--max-tilt", type=float, default=60.0, help="degrees")
    demo.add_argument("--snr", type=float, default=10.0)
    demo.add_argument("--image", type=int, default=0, help="index of the held-out test image")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    rec = sub.add_parser("reconstruct", help="reconstruct a real tilt series slice by slice")
    rec.add_argument("tilt_series", type=Path, help=f"MRC, TIFF, NPY/NPZ or PNG; supported: {', '.join(io.SUPPORTED)}")
    angles = rec.add_mutually_exclusive_group(required=True)
    angles.add_argument("--angles", type=Path, help="IMOD .rawtlt/.tlt file, one angle (degrees) per line")
    angles.add_argument(
        "--angles-deg",
        help="'start:stop:count' or a comma list of degrees; write --angles-deg=-60:60:61 for a negative start",
    )
    rec.add_argument("--output", type=Path, required=True, help="volume file: .mrc, .tif or .npy")
    rec.add_argument("--preview", type=Path, help="preview PNG (default: beside the output)")
    rec.add_argument("--solver", choices=SOLVERS, default="ddgm")
    rec.add_argument("--prior", help="a bundled prior name (see `python -m priors list`) or a .safetensors file")
    rec.add_argument("--thickness", type=int, help="slab thickness in pixels (default: the detector count)")
    rec.add_argument("--detector-spacing", type=float, default=1.0)
    rec.add_argument("--pixel-size", type=float, default=1.0)
    rec.add_argument("--steps", type=int, help="diffusion steps (DDGM N, DDRM, DPS) or iterations (algebraic)")
    rec.add_argument("--gradient-steps", type=int, default=15, help="DDGM K")
    rec.add_argument("--sigma-max", type=float, default=3.0, help="first noise level (prior units)")
    rec.add_argument("--sigma-min", type=float, default=0.03, help="last noise level (prior units)")
    rec.add_argument("--sigma-y", type=float, help="measurement noise std in normalised units (DDRM)")
    rec.add_argument("--eta", type=float, default=1.0, help="DDRM eta")
    rec.add_argument("--zeta", type=float, default=0.1, help="DPS step")
    rec.add_argument("--tile", type=int, default=128, help="tile size of the prior for wide slices")
    rec.add_argument("--stride", type=int, default=96)
    rec.add_argument("--batch-size", type=int, default=8, help="slices per batch")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--device", default="cpu")
    rec.add_argument("--quiet", action="store_true")
    return parser


def load_prior(spec: str):
    """A bundled prior by name; or weights from a file: NAME.safetensors written by `python -m priors train
    NAME --out DIR` (a bundle: NAME.json holds its recipe), or any network saved with
    `priors.training.save_weights` (its .json holds the architecture)."""
    import json

    import priors

    if not spec.endswith(".safetensors"):
        return priors.load(spec)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such weights file: {path}")
    metadata = path.with_suffix(".json")
    is_bundle = metadata.exists() and "recipe" in json.loads(metadata.read_text())
    if is_bundle:
        return priors.load(path.stem, directory=path.parent)
    from priors.training import load_network_prior

    return load_network_prior(path)


def build_solver(args):
    """The typed solver value for the command-line choice."""
    from linops.spectral import GramEigh

    from ..classical import AlgebraicReconstruction, FilteredBackprojection
    from ..ddgm import DDGM
    from ..ddrm import DDRM
    from ..dps import DPS
    from ..schedules import DDGMUnconditionalSchedule, Geometric

    if args.solver == "ddgm":
        return DDGM(Geometric(args.sigma_max, args.sigma_min, args.steps or 150), gradient_steps=args.gradient_steps)
    if args.solver == "ddrm":
        if args.sigma_y is None:
            raise ValueError("DDRM needs --sigma-y, the measurement noise std in normalised units")
        return DDRM(Geometric(30.0, args.sigma_min, args.steps or 10), sigma_y=args.sigma_y, eta=args.eta,
                    eta_b=1.0, singular_value_cutoff=1 / 30, svd_algorithm=GramEigh())
    if args.solver == "dps":
        schedule = DDGMUnconditionalSchedule.from_endpoints(args.sigma_max, args.sigma_min, args.steps or 1000)
        return DPS(schedule, zeta=args.zeta)
    if args.solver == "algebraic":
        return AlgebraicReconstruction(args.steps or 100)
    return FilteredBackprojection()


def _demo(args) -> None:
    if args.task == "qpi":
        from .qpi import QPIDemoSettings, run_qpi_demo

        run_qpi_demo(QPIDemoSettings(image=args.image, seed=args.seed), args.output, progress=not args.quiet)
        return
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(size=args.size, views=args.views, max_tilt_deg=args.max_tilt, snr=args.snr,
                            image=args.image, seed=args.seed)
    run_demo(settings, args.output, progress=not args.quiet)


def _reconstruct(args) -> None:
    from .figures import volume_preview
    from .reconstruct import SlabGeometry, reconstruct_tilt_series

    series = io.read_tilt_series(args.tilt_series)
    if args.angles is not None:
        angles, source = io.read_angles(args.angles), str(args.angles)
    else:
        angles, source = io.parse_angles(args.angles_deg), "--angles-deg"
    io.check_angles(angles, series.shape[0], source)
    solver = build_solver(args)
    prior = None
    if args.solver in DEFAULT_PRIOR:
        prior = load_prior(args.prior or DEFAULT_PRIOR[args.solver])
    geometry = SlabGeometry(args.thickness, args.detector_spacing, args.pixel_size)
    volume = reconstruct_tilt_series(series, angles, solver, prior, geometry=geometry, batch_size=args.batch_size,
                                     tile=args.tile, stride=args.stride, seed=args.seed, device=args.device,
                                     progress=not args.quiet)
    out = io.write_array(args.output, volume)
    preview = volume_preview(volume, args.preview or out.with_suffix(".png"),
                             title=f"{args.solver} reconstruction of {args.tilt_series.name}")
    print(f"wrote {out} {volume.shape} and {preview}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"demo": _demo, "reconstruct": _reconstruct}[args.command](args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
