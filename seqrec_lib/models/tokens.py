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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import math

import torch
from torch import Tensor


@dataclass(frozen=True)
class TokenLayout:
    """The real tokens of ``items`` [B, L] and their trimmed attention layout [B, W].

    - ``index`` [T]: flat index of each token in [B·W] (row-major);
    - ``rows`` [T] / ``positions`` [T]: each token's sequence (0..B-1) and column in the full window (0..L-1);
    - ``last`` [B]: the token index of each sequence's most recent item (-1 for an empty row);
    - ``attention`` [B, 1, W, W] bool: query i may attend key j (causal unless built with ``causal=False``,
      real keys; a padding query only itself, as ``layers.attention_mask``).
    """

    batch: int
    length: int
    width: int
    index: Tensor
    rows: Tensor
    positions: Tensor
    last: Tensor
    attention: Tensor

    @classmethod
    def from_items(cls, items: Tensor, packed: bool = True, causal: bool = True) -> "TokenLayout":
        """Build the layout of ``items`` [B, L]; ``packed=False`` keeps all B·L positions as tokens;
        ``causal=False`` lets every query attend to every real key (bidirectional)."""
        from .layers import attention_mask

        B, L = items.shape
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
        return cls(B, L, W, index, index // W, positions, last, attention_mask(window, causal))

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
        rest = x.shape[1:]
        R = math.prod(rest)
        if heads_first:
            H, e = rest
            head = torch.arange(H, device=x.device)[:, None] * (self.length * e) + torch.arange(e, device=x.device)
            base = (self.rows * H * self.length + self.positions) * e                          # [T]
            element = base[:, None, None] + head                                              # [T, H, e]
        else:
            element = ((self.rows * self.length + self.positions)[:, None] * R
                       + torch.arange(R, device=x.device)).view(x.shape)                      # [T, *rest]
        return x * keep_scale(element, p, x)

    def attention_dropout(self, probs: Tensor, p: float, training: bool) -> Tensor:
        """Dropout of trimmed maps [B, *heads, W, W] whose keep/drop is fixed by each entry's index in the
        padded maps [B, *heads, L, L]. Only entries a real query may attend to are drawn (the others are 0)."""
        if not training or p == 0.0:
            return probs
        B, W, L = self.batch, self.width, self.length
        G = math.prod(probs.shape[1:-2])
        b, q, k = self.allowed                                                                # [n] each
        g = torch.arange(G, device=probs.device)[:, None]                                     # [G, 1]
        element = ((b * G + g) * L + q + (L - W)) * L + k + (L - W)                          # [G, n]
        noise = torch.zeros(B, G, W, W, dtype=probs.dtype, device=probs.device)
        noise[b, g, q, k] = keep_scale(element, p, probs)
        return probs * noise.view(probs.shape)

    @cached_property
    def allowed(self) -> tuple[Tensor, Tensor, Tensor]:
        """(b, q, k) [n] each: the attention entries of real queries, (sequence, query column, key column)."""
        real = torch.zeros(self.batch * self.width, dtype=torch.bool, device=self.index.device)
        real[self.index] = True
        entries = self.attention[:, 0] & real.view(self.batch, self.width, 1)                  # [B, W, W]
        return tuple(entries.nonzero().unbind(1))


_MASK32 = 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' lowbias32) of int64 values in [0, 2³²), vectorised."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def keep_scale(element: Tensor, p: float, like: Tensor) -> Tensor:
    """Dropout multipliers for int64 element indices: 1/(1-p) where kept, 0 where dropped, as ``like``'s dtype.

    Each call draws one seed from torch's default generator (so runs are reproducible and resumable from the
    saved RNG state); element e is dropped when hash(hash(e) ^ seed) < p·2³².
    """
    seed = torch.randint(0, 2**31, (), device=element.device)
    u = _hash32(_hash32(element & _MASK32) ^ seed)
    return (u >= int(p * 2**32)).to(like.dtype) * (1.0 / (1.0 - p))
