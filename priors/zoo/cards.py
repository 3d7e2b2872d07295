"""The model card (NAME.md) and loss curve (NAME_loss.png) of a bundle, written from its metadata JSON."""

from __future__ import annotations

import os
from pathlib import Path

from ..training import smoothed
from .bundle import FINAL_LOSS_WINDOW, BundlePaths, load, read_bundle_metadata, write_json
from .catalog import recipe
from .checks import measure_quality
from .recipes import (
    ConditionalDiffusion,
    Denoising,
    FileData,
    IncrementalReconstruction,
    Normalization,
    PatchDenoising,
    Recipe,
)


def refresh_card(name: str, directory: str | os.PathLike) -> Path:
    """Re-measure the quality of the bundle `name` in `directory` and rewrite its JSON and model card
    (the weights and training record are left as they are). Returns the card's path."""
    paths = BundlePaths(Path(directory), name)
    meta = read_bundle_metadata(name, paths.directory)
    meta["recipe"]["description"] = recipe(name).description
    meta["quality"] = measure_quality(recipe(name), load(name, directory=paths.directory))
    write_json(paths.metadata, meta)
    paths.card.write_text(model_card(meta))
    return paths.card


def plot_loss(history: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
    steps = range(1, len(history) + 1)
    ax.plot(steps, history, color="0.8", lw=0.6, label="loss per step")
    ax.plot(steps, smoothed(history, max(len(history) // 50, 1)), color="C0", lw=1.5, label="running mean")
    if min(history) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


_DATA_NOTES = {
    Normalization.UNIT: "images in [0, 1] as generated (convention `UNIT`).",
    Normalization.STANDARDIZE: (
        "each image standardized to zero mean and unit variance (`priors.data.standardize`), DDGM's setting: "
        "give the network per-image standardized images. The declared convention `{conv}` is one fixed affine "
        "map, with the training set's average per-image mean and std in [0, 1] units; `to_convention` converts "
        "through it exactly, but it matches per-image standardization only on average (on 128 x 128 cells the "
        "per-image mean varies by about 0.03 and the std by about 0.013 around it)."
    ),
    Normalization.ZERO_MEAN: (
        "2 (u - mean(u)) per image: the [-1, 1] scale with each image's mean removed (phase is measured only "
        "up to a constant; `priors.qpi`). The declared convention `{conv}` uses the training set's average mean."
    ),
}


def model_card(meta: dict) -> str:
    """The markdown model card of a bundle, from its metadata JSON."""
    r = Recipe.from_json(meta["recipe"])
    d, net, obj, opt = r.data, r.network, r.objective, r.optimization
    tr, q = meta["training"], meta.get("quality", {})
    conv = meta["convention"]["name"]
    lines = [
        f"# {r.name}",
        "",
        r.description,
        "",
        "```python",
        "import priors",
        (f'prior = priors.load("{r.name}")   # {type_name(obj)}' if not isinstance(d, FileData) else
         f'prior = priors.zoo.load_file("{r.name}.safetensors")   # {type_name(obj)}'),
        "```",
        "",
        "## Data",
        f"- {d.describe()}",
        f"- Normalisation: {_DATA_NOTES[d.normalization].format(conv=conv)}",
        "",
        "## Model",
        f"- `UNet(channels={tuple(net.channels)}, blocks={net.blocks}, conditional={net.conditional}, "
        f"extra_channels={obj.extra_channels})`"
        + (" (the denoiser) and the schedule network" if isinstance(obj, ConditionalDiffusion) else "")
        + f", {meta['parameters']:,} parameters, "
        f"stored as {meta['weights']['dtype']} ({meta['weights']['bytes'] / 1e6:.2f} MB).",
        f"- {_objective_note(obj)}",
        f"- Convention: `{conv}`; " + _range_note(obj),
        "",
        "## Training",
        f"- Command: `{tr['command']}` "
        + (f"(recipe `{r.name}` in `priors/zoo/catalog.py`)." if not isinstance(d, FileData)
           else f"(its recipe is recorded in `{r.name}.json`; `python -m solvers reconstruct ... --prior "
                f"{r.name}.safetensors` uses it)."),
        f"- Adam, lr {opt.lr:g} (warm-up {opt.warmup} steps, cosine decay to {opt.final_lr_fraction:g} lr), "
        f"batch {opt.batch_size}, gradient clip {opt.grad_clip}, seed {opt.seed}.",
        f"- Steps: {tr['steps']}"
        + ("" if tr["steps"] == tr["recipe_steps"] else f" (recipe: {tr['recipe_steps']})")
        + f"; wall time {tr['wall_time_s'] / 60:.1f} min on {tr['threads']} CPU thread(s)"
        + (f" in each of {tr['processes']} processes (torchrun)" if tr.get("processes", 1) > 1 else "")
        + f" of a shared 2-core machine (torch {tr['torch']}, {tr['date']}).",
        f"- Loss (mean of the last {FINAL_LOSS_WINDOW} steps): {tr['final_loss']:.4g} "
        f"(first {FINAL_LOSS_WINDOW} steps: {tr['initial_loss']:.4g}).",
        "",
        f"![training loss]({r.name}_loss.png)",
        "",
        "## Quality check (measured)",
    ]
    lines += _quality_lines(obj, q)
    return "\n".join(lines) + "\n"


def type_name(obj) -> str:
    return {
        Denoising: "NetworkPrior",
        PatchDenoising: "PatchPrior",
        IncrementalReconstruction: "DegradationAwarePrior",
        ConditionalDiffusion: "ConditionalDiffusionPrior",
    }[type(obj)]


def _objective_note(obj) -> str:
    if isinstance(obj, Denoising):
        told = "blind: told no sigma" if obj.conditioning.name == "BLIND" else "told sigma"
        return (
            f"Predicts {obj.target.value} ({told}); denoising score matching, log sigma ~ "
            f"U[log {obj.sigma_min:g}, log {obj.sigma_max:g}]."
        )
    if isinstance(obj, PatchDenoising):
        return (
            f"PaDIS patch network on {obj.patch} x {obj.patch} patches of a random non-overlapping grid shift, "
            f"with {obj.extra_channels} position channels (frequencies={obj.position_frequencies}); predicts "
            f"{obj.target.value}; patch DSM, log sigma ~ U[log {obj.sigma_min:g}, log {obj.sigma_max:g}]."
        )
    if isinstance(obj, ConditionalDiffusion):
        m, sched = obj.measurement, obj.schedule
        return (
            f"CVDM conditional prior p(x | y), schedule `{sched!r}`; the denoiser eps_hat(z_t, y, gamma) sees "
            f"z_t, the condition [y / {m.y_scale:g}, Tikhonov inverse (mu = {m.condition_regularization:g})] and "
            f"the gamma map. Loss: noise + L_beta + KL + {obj.alpha:g} (d^2 gamma / dt^2)^2, weights "
            f"{obj.weights}, boundary times 1 / {obj.steps} and 1 - 1 / {obj.steps}. Measurement: two-shot TIE, "
            f"wavelength {m.wavelength:g} um, pixel {m.pixel_size:g} um, defocus +-{m.defocus:g} um, phase up to "
            f"{m.phase_max:g} rad, intensity noise sigma_I ~ U({m.noise[0]:g}, {m.noise[1]:g}) (`{m!r}`)."
        )
    family = "Gaussian blur std" if obj.degradation.name == "BLUR" else "inpainting mask width"
    return (
        f"Phi(y_t, t) = y_t + UNet(y_t, exp(4 t)) predicts x0 (the UNet embeds log(sigma) / 4 = t); "
        f"{family} {obj.severity[0]:g} -> {obj.severity[1]:g} px linear in t; incremental-reconstruction "
        f"loss with dt = {obj.dt:g}, w = 1 / sigma_t^2."
    )


def _range_note(obj) -> str:
    if isinstance(obj, ConditionalDiffusion):
        return "the sampler is `solvers.CVDM` (Algorithm 2); images of the measurement's size only."
    if isinstance(obj, IncrementalReconstruction):
        return (
            f"t in [0, 1], noise sigma_t = {obj.sigma_0:g} ({obj.sigma_1:g} / {obj.sigma_0:g})^t "
            f"(`GeometricNoise({obj.sigma_0:g}, {obj.sigma_1:g})`); 64 x 64 images only (the process is fixed)."
        )
    lo, hi = obj.sigma_range
    return f"`sigma_range = ({lo:g}, {hi:g})` in these units."


def _quality_lines(obj, q: dict) -> list[str]:
    if not q:
        return ["(not measured)"]
    head = (
        f"{q['images']} held-out images (`Split.TEST`, {q['image_size']} x {q['image_size']}), fixed noise; "
        "PSNR in dB with each clean image's range as the peak (= PSNR in [0, 1] units)."
    )
    if "times" in q:
        sched = q["schedule"]
        return [
            f"{q['images']} held-out images (`Split.TEST`, {q['image_size']} x {q['image_size']}), measured at "
            f"sigma_I = {q['noise_sigma_I']:g}; PSNR in dB with each clean image's range as the peak.",
            "",
            f"- Schedule: lambda(y) over the pixels {sched['lambda_min']:.3g} .. {sched['lambda_max']:.3g} "
            f"(mean {sched['lambda_mean']:.3g}), rho(1) = {sched['rho_1']:.3g}; "
            f"gamma(t_0) >= {sched['gamma_t0_min']:.4g} "
            f"and gamma(t_1) <= {sched['gamma_t1_max']:.3g} for every pixel (the loss wants 1 and 0).",
            f"- The Tikhonov inverse the network is given: {q['tikhonov_psnr']:.2f} dB.",
            "",
            "| t | mean gamma | PSNR of the one-step x0_hat(z_t, y) |",
            "|---|---|---|",
            *[f"| {row['t']:g} | {row['mean_gamma']:.3g} | {row['output_psnr']:.2f} |" for row in q["times"]],
        ]
    if "severities" in q:
        rows = [
            "| t | PSNR of y_t | PSNR of Phi(y_t, t) | tau = t - dt | PSNR of A_tau y_t | PSNR of A_tau Phi(y_t, t) |",
            "|---|---|---|---|---|---|",
            *[
                f"| {row['t']:g} | {row['input_psnr']:.2f} | {row['output_psnr']:.2f} | {row['tau']:g} "
                f"| {row['input_psnr_at_tau']:.2f} | {row['output_psnr_at_tau']:.2f} |"
                for row in q["severities"]
            ],
        ]
        note = [
            "",
            "The IR loss fits A_tau Phi to A_tau x0, so the look-ahead columns are what the network is trained "
            "for (and what the Dirac sampler uses: y_{t - dt} is built from A_{t - dt} Phi). Phi itself is only "
            "weakly constrained where A_tau attenuates strongly: with a small dt its one-step estimate at large "
            "t can carry more fine detail than the MMSE estimate would (and a lower PSNR).",
        ]
        return [head, "", *rows, *(note if obj.dt < 1 else [])]
    rows = [
        "| sigma | noisy PSNR | denoised PSNR | denoised PSNR on training images |",
        "|---|---|---|---|",
        *[
            f"| {row['sigma']:g} | {row['input_psnr']:.2f} | {row['output_psnr']:.2f} "
            f"| {row['train_output_psnr']:.2f} |"
            for row in q["sigmas"]
        ],
    ]
    return [head, "", *rows]
