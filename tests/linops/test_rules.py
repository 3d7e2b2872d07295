"""One home for each operator's facts (linops.rules tables) and typed derived data (linops.memo keys,
cached properties): where a rule is registered, which key a result is remembered under, what copies drop."""

import copy
import functools
import pickle

import pytest
import torch

import linops
from linops import memo
from linops.operators.blur import blur_matrices
from linops.operators.decomposition import SVD
from linops.operators.tomography.fbp import REBINNING
from linops.rules import coisometry_rules, isometry_rules, norm_rules, svd_rules
from linops.spectral import DenseSVD, GramEigh, RandomizedSVD, SymmetricGramEigh, structured_svd, svd
from linops.spectral.pseudoinverse import PinvOf
from linops.spectral.spectral_norm import NormOf
from linops.spectral.svd_dispatch import STRUCTURED, StructuredSVD, SVDOf
from linops.testing import entries, make

F64 = torch.float64


@functools.cache
def _leaves():
    """One market operator per leaf type (no operands), float64."""
    seen = {}
    for entry in entries():
        op = make(entry.name)
        if not op.operands and type(op) not in seen:
            seen[type(op)] = (entry.name, op)
    return sorted(seen.values(), key=lambda item: item[0])


def _first_rule(table, op, *extra):
    for rule in table.candidates(op):
        if rule(op, *extra) is not None:
            return rule
    return None


def _svd_homes(home: str) -> set[str]:
    """Where the svd rules of a type defined in module `home` may live: there, and for Diagonal and Mask beside
    the SVD value, which is built on them (`to_operator` is U @ Diagonal(s) @ V^H)."""
    return {home, SVD.__module__} if home == linops.Diagonal.__module__ else {home}


def test_every_structured_leaf_resolves_through_a_rule_of_its_own_module():
    """A market leaf with a structured SVD gets it from an svd rule registered in the module that defines
    its type (or, for a type declared an isometry / co-isometry there, from the generic isometry rule).
    That the SVD reproduces the operator is tested over the same market in tests/linops/test_spectral.py."""
    checked = []
    for name, op in _leaves():
        if structured_svd(op) is None:
            continue
        rule = _first_rule(svd_rules, op, structured_svd)
        assert rule is not None, name
        home = type(op).__module__
        if rule.__module__ == "linops.spectral.svd_dispatch":  # the generic isometry rule
            facts = [_first_rule(isometry_rules, op), _first_rule(coisometry_rules, op)]
            assert any(f is not None and f.__module__ == home for f in facts), name
        else:
            assert rule.__module__ in _svd_homes(home), (name, rule.__module__, home)
        assert structured_svd(op).structured, name  # its values are checked in test_spectral.py
        checked.append(type(op).__name__)
    # the types whose SVD used to live in spectral/svd_dispatch.py
    assert {"CircularBlur", "SeparableBlur", "Diagonal", "Mask", "Downsample", "Decimate", "FFT2"} <= set(checked)


def test_every_exact_norm_rule_lives_with_its_type_and_is_exact():
    checked = []
    for name, op in _leaves():
        rule = _first_rule(norm_rules, op)
        if rule is None or rule.__module__.startswith("linops.spectral"):
            continue
        assert rule.__module__ == type(op).__module__, (name, rule.__module__)
        exact = float(torch.linalg.matrix_norm(op.to_dense(), ord=2))
        assert rule(op) == pytest.approx(exact, rel=1e-9, abs=1e-12), name
        checked.append(type(op).__name__)
    assert {"CircularBlur", "Diagonal", "Downsample", "FFT2"} <= set(checked)


def test_memo_keys_of_different_algorithms_never_collide():
    keys = [
        SVDOf(None),
        SVDOf(DenseSVD()),
        SVDOf(GramEigh()),
        SVDOf(SymmetricGramEigh()),
        SVDOf(RandomizedSVD(rank=3)),
        SVDOf(RandomizedSVD(rank=4)),
        StructuredSVD(),
        NormOf(None),
        PinvOf(linops.SVDPinv()),
    ]
    assert len(set(keys)) == len(keys)
    assert SVDOf(RandomizedSVD(rank=3)) == SVDOf(RandomizedSVD(rank=3))  # equal values, one key
    A = linops.Matrix(torch.randn(12, 9, generator=torch.Generator().manual_seed(0), dtype=F64))
    dense, randomized = svd(A, DenseSVD()), svd(A, RandomizedSVD(rank=3))
    assert dense.s.numel() == 9 and randomized.s.numel() == 3
    assert memo.recall(A, SVDOf(DenseSVD())) is dense and memo.recall(A, SVDOf(RandomizedSVD(rank=3))) is randomized
    assert not memo.holds(A, SVDOf(GramEigh()))


def test_structured_lookup_remembers_the_absence_of_structure_once():
    A = linops.Matrix(torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=F64))
    assert structured_svd(A) is None and memo.holds(A, STRUCTURED)
    calls = []
    table = list(svd_rules.candidates(A))
    assert table  # the generic isometry rule at least
    original = svd_rules._rules[(linops.LinearOperator,)]
    svd_rules._rules[(linops.LinearOperator,)] = [lambda op, child: calls.append(op)] + original
    try:
        assert structured_svd(A) is None
    finally:
        svd_rules._rules[(linops.LinearOperator,)] = original
    assert calls == []  # answered from the memo


@pytest.mark.parametrize("copier", ["deepcopy", "pickle", "to"])
def test_a_copy_after_use_computes_the_same_svd(copier):
    kernel = torch.rand(3, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    A = linops.Mask(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(3)) > 0.3, dtype=F64) @ (
        linops.CircularBlur(kernel, (1, 8, 8))
    )
    first, dense = svd(A), svd(A, DenseSVD())
    A.norm(), A.H
    B = {"deepcopy": copy.deepcopy, "pickle": lambda a: pickle.loads(pickle.dumps(a)), "to": lambda a: a.to(F64)}[
        copier
    ](A)
    for key in (SVDOf(None), SVDOf(DenseSVD()), STRUCTURED, NormOf(None), linops.base.ADJOINT):
        assert memo.holds(A, key) and not memo.holds(B, key), key
    again = svd(B)
    assert again is not first and again.structured == first.structured
    torch.testing.assert_close(again.s, first.s, rtol=0, atol=0)
    torch.testing.assert_close(again.to_operator().to_dense(), dense.to_operator().to_dense(), rtol=1e-10, atol=1e-10)


def test_to_drops_cached_properties_and_recomputes_them_in_the_new_precision():
    kernel = torch.rand(5, 5, generator=torch.Generator().manual_seed(4))
    blur = linops.Blur(kernel, (1, 12, 12), method=linops.ConvolutionMethod.FFT)
    blur.transfer  # noqa: B018  (computed in float32)
    wide = blur.to(F64)
    assert "transfer" not in vars(wide)
    torch.testing.assert_close(wide.transfer, torch.fft.rfft2(kernel.double(), s=wide.fft_shape), rtol=0, atol=0)


def test_fbp_remembers_its_rebinning_on_the_fan_and_copies_drop_it():
    fan = linops.FanBeamRadon.full_range((1, 10, 10), 12, source_distance=30.0, detector_distance=5.0, dtype=F64)
    y = fan @ torch.rand(1, 10, 10, dtype=F64)
    linops.fbp(fan, y)
    rebin = memo.recall(fan, REBINNING)
    assert isinstance(rebin, linops.FanToParallel)
    linops.fbp(fan, y)
    assert memo.recall(fan, REBINNING) is rebin
    assert not memo.holds(copy.deepcopy(fan), REBINNING)


def test_rebuild_is_declared_on_the_base_class():
    leaf = linops.Identity(3)
    assert leaf.rebuild(()) is leaf

    class Node(linops.LinearOperator):
        def __init__(self, op):
            super().__init__(op.in_shape, op.out_shape)
            self.op = op

        @property
        def operands(self):
            return (self.op,)

        def _apply(self, x):
            return self.op._apply(x)

        def _adjoint(self, y):
            return self.op._adjoint(y)

    with pytest.raises(NotImplementedError, match="Node has operands .* does not define rebuild"):
        linops.simplify(Node(leaf))


def test_svd_flags_are_keyword_only():
    eye = linops.Identity(3)
    with pytest.raises(TypeError):
        SVD(eye, torch.ones(3), eye, True, True, True)
    dec = SVD(eye, torch.ones(3), eye, complete=True, range_complete=True, structured=True)
    assert dec.adjoint().complete and dec.scaled(-2.0).range_complete


@pytest.mark.parametrize("boundary", ["zero", "reflect", "symmetric", "replicate", "circular"])
@pytest.mark.parametrize("sizes", [(3, 5), (4, 2)])
def test_one_copy_of_the_padded_blur_matrix_gives_the_separable_blur(boundary, sizes):
    g = torch.Generator().manual_seed(5)
    rows, cols = torch.rand(sizes[0], generator=g, dtype=F64), torch.rand(sizes[1], generator=g, dtype=F64)
    op = linops.SeparableBlur(rows, cols, (1, 7, 6), boundary)
    M_rows = blur_matrices(rows.flip(0)[None], 7, op.boundary)[0]
    M_cols = blur_matrices(cols.flip(0)[None], 6, op.boundary)[0]
    torch.testing.assert_close(torch.kron(M_rows, M_cols), op.to_dense(), rtol=1e-13, atol=1e-13)


def test_every_rule_about_a_concrete_operator_lives_in_the_module_of_one_of_its_types():
    """The layout the tables exist for: a rule keyed by concrete operator types (classes defined under
    linops.operators) is registered in the module that defines one of them (for the tomography package,
    anywhere in it), never in spectral/, algebra.py or a backend."""
    from linops import rules

    tables = [
        rules.adjoint_rules,
        rules.composition_rules,
        rules.sum_rules,
        rules.svd_rules,
        rules.norm_rules,
        rules.isometry_rules,
        rules.coisometry_rules,
        rules.basis_rules,
        rules.symmetry_rules,
    ]
    checked = 0
    for table in tables:
        for types, rule in table.registered():
            homes = {t.__module__ for t in types}
            if not all(home.startswith("linops.operators.") for home in homes):
                continue  # a generic node (or a test's own type) is part of the key
            packages = {h.rsplit(".", 1)[0] for h in homes if h.startswith("linops.operators.tomography.")}
            where = rule.__module__
            if table is rules.svd_rules and len(homes) == 1:
                homes = _svd_homes(*homes)
            assert where in homes or where.rsplit(".", 1)[0] in packages, (table.name, types, where)
            checked += 1
    assert checked >= 50
