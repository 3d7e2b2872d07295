"""Block operators and Kronecker products (`Kron` lives in linops.kron, below the operators; re-exported here).

Block operators act on flat vectors, as block matrices do: `vstack([A, B])` maps x to the
concatenation [vec(A x); vec(B x)] of shape (m_A + m_B,), `hstack([A, B])` maps the flat
[x_A; x_B] to A x_A + B x_B, and `block_diag([A, B])` maps [x_A; x_B] to [A x_A; B x_B].
`kron(A, B)` keeps tensor shapes: it acts on (*A.in_shape, *B.in_shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .algebra import add, compose
from .base import LinearOperator, check_devices, result_dtype
from .kron import Kron, kron
from .operators.identity import Identity, Zero
from .operators.reshape import Reshape
from .rules import adjoint_rules, composition_rules

__all__ = ["BlockDiag", "HStack", "Kron", "VStack", "block", "block_diag", "hstack", "kron", "vstack"]


def _sizes(shapes):
    return [math.prod(s) for s in shapes]


def _split(x, sizes, shapes):
    return [part.reshape(x.shape[0], *shape) for part, shape in zip(torch.split(x, sizes, dim=1), shapes)]


def _cat(parts):
    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)


class _Blocks(LinearOperator):
    def __init__(self, blocks, in_shape, out_shape):
        blocks = tuple(blocks)
        super().__init__(in_shape, out_shape, dtype=result_dtype(blocks), device=check_devices(blocks))
        self.blocks = blocks

    @property
    def operands(self):
        return self.blocks

    def rebuild(self, operands):
        return type(self)(operands)

    def __repr__(self):
        return f"{type(self).__name__}([{', '.join(repr(b) for b in self.blocks)}])"


class VStack(_Blocks):
    """[A_1; ...; A_k] x = [vec(A_1 x); ...; vec(A_k x)]: the blocks share in_shape."""

    def __init__(self, blocks: Sequence[LinearOperator]):
        for b in blocks[1:]:
            if b.in_shape != blocks[0].in_shape:
                raise ValueError(
                    f"vstack needs equal in_shape, got {blocks[0]!r} {blocks[0].in_shape} and {b!r} {b.in_shape}"
                )
        super().__init__(blocks, blocks[0].in_shape, sum(_sizes(b.out_shape for b in blocks)))

    def _apply(self, x):
        return _cat([b._apply_any(x) for b in self.blocks])

    def _adjoint(self, y):
        parts = _split(y, _sizes(b.out_shape for b in self.blocks), [b.out_shape for b in self.blocks])
        return sum(b.H._apply_any(p) for b, p in zip(self.blocks, parts))


class HStack(_Blocks):
    """[A_1, ..., A_k] [x_1; ...; x_k] = A_1 x_1 + ... + A_k x_k: the blocks share out_shape."""

    def __init__(self, blocks: Sequence[LinearOperator]):
        for b in blocks[1:]:
            if b.out_shape != blocks[0].out_shape:
                raise ValueError(
                    f"hstack needs equal out_shape, got {blocks[0]!r} {blocks[0].out_shape} and {b!r} {b.out_shape}"
                )
        super().__init__(blocks, sum(_sizes(b.in_shape for b in blocks)), blocks[0].out_shape)

    def _apply(self, x):
        parts = _split(x, _sizes(b.in_shape for b in self.blocks), [b.in_shape for b in self.blocks])
        return sum(b._apply_any(p) for b, p in zip(self.blocks, parts))

    def _adjoint(self, y):
        return _cat([b.H._apply_any(y) for b in self.blocks])


class BlockDiag(_Blocks):
    """diag(A_1, ..., A_k) [x_1; ...; x_k] = [vec(A_1 x_1); ...; vec(A_k x_k)]."""

    def __init__(self, blocks: Sequence[LinearOperator]):
        super().__init__(blocks, sum(_sizes(b.in_shape for b in blocks)), sum(_sizes(b.out_shape for b in blocks)))

    def _apply(self, x):
        parts = _split(x, _sizes(b.in_shape for b in self.blocks), [b.in_shape for b in self.blocks])
        return _cat([b._apply_any(p) for b, p in zip(self.blocks, parts)])

    def _adjoint(self, y):
        parts = _split(y, _sizes(b.out_shape for b in self.blocks), [b.out_shape for b in self.blocks])
        return _cat([b.H._apply_any(p) for b, p in zip(self.blocks, parts)])


def vstack(blocks: Sequence[LinearOperator]) -> LinearOperator:
    """Stack operators vertically: x -> [vec(A_1 x); ...; vec(A_k x)]."""
    return VStack(list(blocks))


def hstack(blocks: Sequence[LinearOperator]) -> LinearOperator:
    """Stack operators horizontally: [x_1; ...; x_k] -> A_1 x_1 + ... + A_k x_k."""
    return HStack(list(blocks))


def block_diag(blocks: Sequence[LinearOperator]) -> LinearOperator:
    """The block-diagonal operator diag(A_1, ..., A_k) on flat vectors."""
    return BlockDiag(list(blocks))


def block(rows: Sequence[Sequence[LinearOperator | None]]) -> LinearOperator:
    """The block operator [[A, B], [C, D]] = vstack([hstack([A, B]), hstack([C, D])]).

    A None entry is a zero block; its shape is inferred from its row and column.
    """
    rows = [list(r) for r in rows]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("block needs a non-empty rectangular list of rows")
    col_in = [next((r[j].in_shape for r in rows if r[j] is not None), None) for j in range(len(rows[0]))]
    row_out = [next((b.out_shape for b in r if b is not None), None) for r in rows]
    if None in col_in or None in row_out:
        raise ValueError("block: every row and every column needs at least one operator to fix its shape")
    known = next(b for r in rows for b in r if b is not None)
    filled = [
        [
            b if b is not None else Zero(col_in[j], row_out[i], dtype=known.dtype, device=known.device)
            for j, b in enumerate(r)
        ]
        for i, r in enumerate(rows)
    ]
    return vstack([hstack(r) if len(r) > 1 else r[0] for r in filled])


@adjoint_rules.register(VStack)
def _adjoint_of_vstack(op):
    """[A; B]^H = [A^H, B^H]."""
    return HStack([b.H for b in op.blocks])


@adjoint_rules.register(HStack)
def _adjoint_of_hstack(op):
    """[A, B]^H = [A^H; B^H]."""
    return VStack([b.H for b in op.blocks])


@adjoint_rules.register(BlockDiag)
def _adjoint_of_block_diag(op):
    """diag(A, B)^H = diag(A^H, B^H)."""
    return BlockDiag([b.H for b in op.blocks])


@composition_rules.register(HStack, VStack)
def _row_times_column(h, v):
    """[A_1, ..., A_k] [B_1; ...; B_k] = A_1 B_1 + ... + A_k B_k when the block sizes match."""
    if len(h.blocks) != len(v.blocks) or any(
        math.prod(a.in_shape) != math.prod(b.out_shape) for a, b in zip(h.blocks, v.blocks)
    ):
        return None
    return add(*(compose(a, _reshape(b.out_shape, a.in_shape, b), b) for a, b in zip(h.blocks, v.blocks)))


def _reshape(in_shape, out_shape, like: LinearOperator) -> LinearOperator:
    if in_shape == out_shape:
        return Identity(in_shape, dtype=like.dtype, device=like.device)
    return Reshape(in_shape, out_shape, dtype=like.dtype, device=like.device)
