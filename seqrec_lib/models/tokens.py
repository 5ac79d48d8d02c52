"""Tokens, not windows: where the real items of a left-padded batch sit, so that position-wise layers run on
the ``T`` real tokens only and just the L×L attention sees a per-sequence layout (docs: DESIGN "Speed
without a second code path").

A batch ``items`` [B, L] (0 = padding on the left) becomes

- ``T`` tokens, row-major (sequence by sequence, oldest first): position-wise tensors are [T, ...];
- a trimmed attention layout [B, W]: the last ``W`` columns, ``W`` = the longest sequence of the batch;
  ``pad`` / ``unpad`` move tensors between [T, ...] and [B, W, ...].

``packed=False`` keeps every one of the B·L positions as a token (``W = L``): that is the padded computation
the packed one must equal at real positions (tests compare them). Dropout noise is drawn over the full
padded shape and then gathered (``dropout``), so both layouts draw the very same masks from the same RNG
stream as ``F.dropout`` on a padded [B, L, ...] tensor on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TokenLayout:
    """The real tokens of ``items`` [B, L] and their trimmed attention layout [B, W].

    - ``index`` [T]: flat index of each token in [B·W] (row-major);
    - ``positions`` [T]: each token's column in the full [B, L] window (0..L-1);
    - ``last`` [B]: the token index of each sequence's most recent item (-1 for an empty row);
    - ``attention`` [B, 1, W, W] bool: query i may attend key j (causal, real keys; a padding query only
      itself, as ``layers.attention_mask``).
    """

    batch: int
    length: int
    width: int
    index: Tensor
    positions: Tensor
    last: Tensor
    attention: Tensor

    @classmethod
    def from_items(cls, items: Tensor, packed: bool = True) -> "TokenLayout":
        """Build the layout of ``items`` [B, L]; ``packed=False`` keeps all B·L positions as tokens."""
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
        return cls(B, L, W, index, positions, last, attention_mask(window))

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
        """``F.dropout`` of the padded [B, L, *rest] tensor, at the tokens: x [T, *rest] → [T, *rest].
        ``heads_first``: x is [T, H, e] and the padded tensor was laid out [B, H, L, e]."""
        if not training or p == 0.0:
            return x
        if heads_first:
            H, e = x.shape[1:]
            noise = dropout_noise((self.batch, H, self.length, e), p, x).transpose(1, 2)   # [B, L, H, e]
        else:
            noise = dropout_noise((self.batch, self.length, *x.shape[1:]), p, x)
        return x * self.from_full(noise)

    def attention_dropout(self, probs: Tensor, p: float, training: bool) -> Tensor:
        """``F.dropout`` of padded maps [B, *heads, L, L], on the trimmed maps [B, *heads, W, W]."""
        if not training or p == 0.0:
            return probs
        noise = dropout_noise((*probs.shape[:-2], self.length, self.length), p, probs)
        return probs * noise[..., self.length - self.width:, self.length - self.width:]


def dropout_noise(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """The multiplier ``F.dropout`` draws on the CPU for a contiguous tensor of ``shape``: Bernoulli(1-p)/(1-p),
    consuming the default generator exactly as it does (so a padded and a packed run see the same masks)."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)
