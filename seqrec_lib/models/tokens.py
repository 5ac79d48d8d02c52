"""Tokens, not windows: where the real items of a left-padded batch sit, so that position-wise layers run on
the ``T`` real tokens only and just the L×L attention sees a per-sequence layout (docs: DESIGN "Speed
without a second code path").

A batch ``items`` [B, L] (0 = padding on the left) becomes

- ``T`` tokens, row-major (sequence by sequence, oldest first): position-wise tensors are [T, ...];
- a trimmed attention layout [B, W]: the last ``W`` columns, ``W`` = the longest sequence of the batch;
  ``pad`` / ``unpad`` move tensors between [T, ...] and [B, W, ...].

``packed=False`` keeps every one of the B·L positions as a token (``W = L``): that is the padded computation
the packed one must equal at real positions (tests compare them, dropout on). Dropout is counter-based: each
element's keep/drop is a hash of (one seed drawn from torch's generator per call, the element's index in the
full padded tensor [B, L, ...]), so both layouts drop the very same elements, and the cost is proportional to
the real tokens (torch's CPU Bernoulli draws cost ~30 ns an element on non-Intel CPUs, over the padded shape).

Length buckets: the attention of a batch whose lengths vary (Beauty: mean 5.7, max 50) runs bucket by bucket
(``per_bucket``), each bucket's sequences in a layout as wide as its longest one (widths double from
``BUCKET_MIN_WIDTH``), on the same batch: only masked entries (exactly 0 after the softmax) are left out, and each
bucket reuses the dropout seeds one call on the whole batch would draw, so the results are the unbucketed ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import math

import torch
from torch import Tensor


BUCKET_MIN_WIDTH = 8    # the narrowest attention bucket; the widths double from it up to the batch's W


class DropoutSeeds:
    """The seed of each dropout call of one forward pass, drawn from torch's default generator; inside ``replay``
    the i-th call after each ``rewind`` gets the same seed, so every length bucket of a layer drops with the seeds
    of one call on the whole batch (and the generator advances as it would for that one call)."""

    def __init__(self) -> None:
        self._tape: list[Tensor] | None = None
        self._next = 0

    def draw(self, device: torch.device) -> Tensor:
        if self._tape is None:
            return torch.randint(0, 2**31, (), device=device)
        if self._next == len(self._tape):
            self._tape.append(torch.randint(0, 2**31, (), device=device))
        self._next += 1
        return self._tape[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    @contextmanager
    def replay(self) -> Iterator["DropoutSeeds"]:
        self._tape, self._next = [], 0
        try:
            yield self
        finally:
            self._tape = None


@dataclass(frozen=True)
class TokenLayout:
    """The real tokens of ``items`` [B, L] and their trimmed attention layout [B, W].

    - ``index`` [T]: flat index of each token in [B·W] (row-major);
    - ``rows`` [T] / ``positions`` [T]: each token's sequence (its row of ``items``) and column in the full
      window (0..L-1): they fix the token's dropout draws;
    - ``last`` [B]: the token index of each sequence's most recent item (-1 for an empty row);
    - ``attention`` [B, 1, W, W] bool: query i may attend key j (causal unless built with ``causal=False``,
      real keys; a padding query only itself, as ``layers.attention_mask``);
    - ``sequences`` [B]: the row of ``items`` of each of this layout's rows (a bucket holds some of them);
    - ``seeds``: the dropout seeds of this forward pass (shared with the buckets).
    """

    batch: int
    length: int
    width: int
    index: Tensor
    rows: Tensor
    positions: Tensor
    last: Tensor
    attention: Tensor
    sequences: Tensor
    seeds: DropoutSeeds = field(default_factory=DropoutSeeds, compare=False)
    hash_cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_items(cls, items: Tensor, packed: bool = True, causal: bool = True) -> "TokenLayout":
        """Build the layout of ``items`` [B, L]; ``packed=False`` keeps all B·L positions as tokens;
        ``causal=False`` lets every query attend to every real key (bidirectional). Off the CPU the layout is always
        padded: on the lent H200 (2026-12-04, ``benchmarks/results/speed_gpu_h200.json``) SASRec-CE on Beauty
        trained 4.3 s an epoch packed and 1.6 s padded (the small per-token and per-bucket kernels and their host
        synchronisations cost more there than the padding saves)."""
        from .layers import attention_mask

        B, L = items.shape
        packed = packed and items.device.type == "cpu"
        real = items > 0                                                          # [B, L]
        lengths = real.sum(1)                                                     # [B]
        W = int(lengths.max()) if packed and B else L
        W = max(W, 1)
        window = items[:, L - W:]                                                 # [B, W]
        keep = (window > 0) if packed else torch.ones_like(window, dtype=torch.bool)
        index = keep.reshape(-1).nonzero().squeeze(1)                             # [T]
        positions = index % W + (L - W)                                           # [T]
        row_end = torch.cumsum(keep.sum(1), 0)                                    # [B]
        last = torch.where(lengths > 0, row_end - 1, torch.full_like(row_end, -1))
        return cls(B, L, W, index, index // W, positions, last, attention_mask(window, causal),
                   torch.arange(B, device=items.device))

    @property
    def n_tokens(self) -> int:
        return int(self.index.numel())

    def pad(self, x: Tensor) -> Tensor:
        """[T, *rest] → [B, W, *rest], zeros where there is no token."""
        flat = x.new_zeros(self.batch * self.width, *x.shape[1:])
        return flat.index_copy(0, self.index, x).view(self.batch, self.width, *x.shape[1:])

    def unpad(self, x: Tensor) -> Tensor:
        """[B, W, *rest] → [T, *rest]."""
        return x.reshape(self.batch * self.width, *x.shape[2:]).index_select(0, self.index)

    def to_full(self, x: Tensor) -> Tensor:
        """[T, *rest] → [B, L, *rest] on the full window, zeros where there is no token."""
        padded = self.pad(x)
        if self.width == self.length:
            return padded
        return torch.cat([padded.new_zeros(self.batch, self.length - self.width, *x.shape[1:]), padded], 1)

    def from_full(self, x: Tensor) -> Tensor:
        """[B, L, *rest] (e.g. targets or time features of the batch) → [T, *rest] at the tokens."""
        return self.unpad(x[:, self.length - self.width:])

    def last_tokens(self, x: Tensor) -> Tensor:
        """[T, *rest] → [B, *rest] each sequence's most recent token (zeros for an empty row)."""
        present = (self.last >= 0).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return x.index_select(0, self.last.clamp(min=0)) * present

    def dropout(self, x: Tensor, p: float, training: bool, heads_first: bool = False) -> Tensor:
        """Dropout of x [T, *rest] whose keep/drop is fixed by each element's index in the padded [B, L, *rest]
        tensor (``heads_first``: x is [T, H, e] and the padded tensor [B, H, L, e])."""
        if not training or p == 0.0:
            return x
        hashed = self._element_hashes(tuple(x.shape[1:]), heads_first)                         # [T, *rest]
        return x * keep_scale(hashed, p, x, self.seeds.draw(x.device))

    def attention_dropout(self, probs: Tensor, p: float, training: bool) -> Tensor:
        """Dropout of trimmed maps [B, *heads, W, W] whose keep/drop is fixed by each entry's index in the
        padded maps [B, *heads, L, L]. Only entries a real query may attend to are drawn (the others are 0)."""
        if not training or p == 0.0:
            return probs
        flat, hashed = self._attention_hashes(math.prod(probs.shape[1:-2]))                   # [G·n] each
        noise = torch.zeros(probs.numel(), dtype=probs.dtype, device=probs.device)
        noise[flat] = keep_scale(hashed, p, probs, self.seeds.draw(probs.device))
        return probs * noise.view(probs.shape)

    def _element_hashes(self, rest: tuple[int, ...], heads_first: bool) -> Tensor:
        """hash(element index) [T, *rest] of ``dropout``'s elements, the half of ``keep_scale``'s hash that does not
        depend on the call's seed: computed once per layout and shape (an encoder's dropouts share it). Indices are
        formed in int32, whose products wrap mod 2³²: they are the low 32 bits of the int64 indices, all the hash
        reads."""
        key = ("tokens", rest, heads_first)
        if key not in self.hash_cache:
            rows, positions = self.rows.to(torch.int32), self.positions.to(torch.int32)          # [T] each
            span = lambda n: torch.arange(n, dtype=torch.int32, device=rows.device)   # noqa: E731
            if heads_first:
                H, e = rest
                base = (rows * (H * self.length) + positions) * e                                # [T]
                element = base[:, None, None] + (span(H)[:, None] * (self.length * e) + span(e))  # [T, H, e]
            else:
                R = math.prod(rest)
                element = ((rows * self.length + positions)[:, None] * R + span(R)).view(-1, *rest)   # [T, *rest]
            self.hash_cache[key] = _hash32(element)
        return self.hash_cache[key]

    def _attention_hashes(self, G: int) -> tuple[Tensor, Tensor]:
        """The entries of real queries in the trimmed maps [B, G, W, W] (flat indices [G·n]) and hash(their index in
        the padded maps [B, G, L, L]) [G·n], once per layout and G (see ``_element_hashes``)."""
        key = ("attention", G)
        if key not in self.hash_cache:
            B, W, L = self.batch, self.width, self.length
            real = torch.zeros(B * W, dtype=torch.bool, device=self.index.device)
            real[self.index] = True
            entries = self.attention[:, 0] & real.view(B, W, 1)                                # [B, W, W]
            b, q, k = entries.nonzero().to(torch.int32).unbind(1)                              # [n] each
            g = torch.arange(G, dtype=torch.int32, device=b.device)[:, None]                   # [G, 1]
            seq = self.sequences.to(torch.int32)[b]
            element = ((seq * G + g) * L + q + (L - W)) * L + k + (L - W)                       # [G, n]
            flat = ((b.long() * G + g) * W + q) * W + k                                         # [G, n] into [B·G·W·W]
            self.hash_cache[key] = (flat.reshape(-1), _hash32(element.reshape(-1)))
        return self.hash_cache[key]

    @cached_property
    def buckets(self) -> list[tuple[Tensor, Tensor, "TokenLayout"]]:
        """The sequences grouped by length: (token ids [T_k] into this layout's tokens, row ids [B_k] into its
        rows, the bucket's layout [B_k, W_k]), W_k = the smallest of BUCKET_MIN_WIDTH·2^j (or W) that holds each
        of its sequences; one bucket (everything, self) when one width holds them all."""
        B, W = self.batch, self.width
        token_rows = self.index // W                                                         # [T]
        lengths = torch.bincount(token_rows, minlength=B)                                    # [B]
        widths = [BUCKET_MIN_WIDTH]
        while widths[-1] < W:
            widths.append(widths[-1] * 2)
        widths[-1] = W
        bucket = torch.searchsorted(torch.tensor(widths, device=lengths.device), lengths)    # [B]
        keys = bucket.unique().tolist()
        if len(keys) <= 1:
            device = self.index.device
            return [(torch.arange(self.n_tokens, device=device), torch.arange(B, device=device), self)]
        out = []
        for k in keys:
            member = bucket == k                                                             # [B]
            rows = member.nonzero().squeeze(1)                                               # [B_k]
            tokens = member[token_rows].nonzero().squeeze(1)                                 # [T_k]
            w = widths[k]
            local_row = (member.cumsum(0) - 1)[token_rows[tokens]]                           # [T_k]
            index = local_row * w + self.index[tokens] % W - (W - w)
            ends = lengths[rows].cumsum(0)
            last = torch.where(lengths[rows] > 0, ends - 1, torch.full_like(ends, -1))
            sub = TokenLayout(len(rows), self.length, w, index, self.rows[tokens], self.positions[tokens], last,
                              self.attention[rows][:, :, W - w:, W - w:], self.sequences[rows], self.seeds)
            out.append((tokens, rows, sub))
        return out

    def per_bucket(self, fn: Callable[["TokenLayout", Tensor], tuple[Tensor | None, ...]], x: Tensor,
                   last_only: bool = False) -> tuple[Tensor | None, ...]:
        """``fn(bucket layout, x at its tokens)`` on each length bucket, outputs put back in this layout's order.

        x [T, ...]; ``fn`` returns a tuple of tensors [T_k, ...] (with ``last_only``: [B_k, ...], one per
        sequence) or None. The buckets replay one call's dropout seeds (``DropoutSeeds.replay``)."""
        if len(self.buckets) == 1:
            return fn(self, x)
        outputs = []
        with self.seeds.replay() as seeds:
            for tokens, _, sub in self.buckets:
                seeds.rewind()
                outputs.append(fn(sub, x.index_select(0, tokens)))
        order = self._bucket_order[1 if last_only else 0]
        return tuple(None if parts[0] is None else torch.cat(parts).index_select(0, order)
                     for parts in zip(*outputs))

    @cached_property
    def _bucket_order(self) -> tuple[Tensor, Tensor]:
        """Where each token / sequence sits in the buckets' outputs concatenated: ([T], [B])."""
        tokens = torch.cat([t for t, _, _ in self.buckets])
        rows = torch.cat([r for _, r, _ in self.buckets])
        return torch.argsort(tokens), torch.argsort(rows)


def _hash32(x: Tensor) -> Tensor:
    """Wellons' lowbias32 hash, vectorised on int32 tensors read as unsigned 32-bit words: products wrap mod 2³² and
    each logical shift is an arithmetic one masked to the bits shifted in (half the memory traffic of int64)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * 0x7FEB352D
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * (0x846CA68B - 2**32)                                          # the unsigned constant as an int32
    return x ^ ((x >> 16) & 0xFFFF)


def keep_scale(hashed: Tensor, p: float, like: Tensor, seed: Tensor) -> Tensor:
    """Dropout multipliers from hashed element indices (``_hash32`` of the indices' int32 low words, which
    ``TokenLayout`` caches): 1/(1-p) where kept, 0 where dropped, as ``like``'s dtype.

    ``seed`` is one draw of torch's default generator per dropout call (``DropoutSeeds``; so runs are
    reproducible and resumable from the saved RNG state); element e is dropped when hash(hash(e mod 2³²) ^ seed)
    < p·2³², compared as unsigned words (the sign bit flipped, so int32 order is unsigned order).
    """
    u = _hash32(hashed ^ seed.to(torch.int32))
    return ((u ^ -2**31) >= int(p * 2**32) - 2**31).to(like.dtype) * (1.0 / (1.0 - p))
