"""Comparison tables: pooling summaries of disjoint image sets is exact."""

import pytest
import torch

from solvers.app.comparison import Row, markdown_table, pool, pool_shards, summary_table


def row(name, mse, psnr, ssim, seconds=1.0, calls=3):
    return Row(
        name,
        torch.zeros(len(mse)),
        torch.tensor(mse, dtype=torch.float64),
        torch.tensor(psnr, dtype=torch.float64),
        torch.tensor(ssim, dtype=torch.float64),
        seconds,
        calls,
        2 * calls,
    )


def test_pooled_shards_equal_the_summary_of_all_images():
    g = torch.Generator().manual_seed(0)
    mse, psnr, ssim = (torch.rand(11, generator=g, dtype=torch.float64).tolist() for _ in range(3))
    whole = row("DDGM", mse, psnr, ssim).summary()
    shards = [
        row("DDGM", mse[:4], psnr[:4], ssim[:4], 1.5, 3).summary(),
        row("DDGM", mse[4:], psnr[4:], ssim[4:], 2.5, 3).summary(),
    ]
    pooled = pool(shards)
    assert pooled["images"] == 11
    for key in ("mse", "psnr", "ssim"):
        assert pooled[key] == pytest.approx(whole[key], rel=1e-12)
        assert pooled[key + "_se"] == pytest.approx(whole[key + "_se"], rel=1e-10)
    assert pooled["seconds"] == 4.0 and pooled["prior_calls"] == 3 and pooled["gradient_evaluations"] == 6
    assert summary_table([pooled]).splitlines()[2].startswith("| DDGM | ")
    with pytest.raises(ValueError, match="one method"):
        pool([shards[0], row("DDRM", mse, psnr, ssim).summary()])
    with pytest.raises(ValueError, match="disagree on prior_calls"):
        pool([shards[0], row("DDGM", mse, psnr, ssim, calls=4).summary()])


def test_table_shows_standard_errors_only_for_several_images():
    assert "±" in markdown_table([row("a", [0.1, 0.2], [20.0, 21.0], [0.5, 0.6])])
    assert "±" not in markdown_table([row("a", [0.1], [20.0], [0.5])])


def test_shards_pool_method_by_method_and_must_be_disjoint():
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(6, generator=g, dtype=torch.float64).tolist() for _ in range(2))

    def shard(first, images, sl):
        return {"first": first, "images": images, "methods": [row("A", a[sl], a[sl], a[sl]).summary(),
                                                              row("B", b[sl], b[sl], b[sl]).summary()]}

    pooled = pool_shards([shard(2, 4, slice(2, 6)), shard(0, 2, slice(0, 2))])
    assert [m["method"] for m in pooled] == ["A", "B"]
    assert pooled[1]["mse"] == pytest.approx(row("B", b, b, b).summary()["mse"], rel=1e-12)
    with pytest.raises(ValueError, match="disjoint"):
        pool_shards([shard(0, 4, slice(0, 4)), shard(2, 4, slice(2, 6))])
    other = shard(4, 2, slice(4, 6))
    other["methods"] = other["methods"][:1]
    with pytest.raises(ValueError, match="same methods"):
        pool_shards([shard(0, 4, slice(0, 4)), other])
