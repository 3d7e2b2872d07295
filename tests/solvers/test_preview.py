"""The volume preview: each section at its true aspect ratio, axes labelled, one colour bar."""

import numpy as np

from solvers.app.figures import preview_figure, volume_preview


def test_thin_volume_panels_keep_their_aspect_and_have_axes_and_a_colour_bar(tmp_path):
    import matplotlib.pyplot as plt

    volume = np.random.default_rng(0).random((40, 6, 90)).astype(np.float32)  # rows, thickness, cols
    fig = preview_figure(volume, voxel_size=2.0)
    images = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(images) == 3
    extents = [tuple(ax.images[0].get_extent()) for ax in images]
    assert extents == [(0, 180, 12, 0), (0, 180, 80, 0), (0, 12, 80, 0)]  # (width, height) x 2 angstrom
    for ax in images:
        assert ax.get_aspect() == 1.0
        assert "[A]" in ax.get_xlabel() and "[A]" in ax.get_ylabel()
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    plt.close(fig)
    path = volume_preview(volume[:1], tmp_path / "one.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]  # no temporary file left behind
