"""Training objectives shared by the models: full softmax cross-entropy over items 1..n_items at the
target positions (docs/sasrec.md §2), fused with the catalogue scoring so the [P, V] logits never exist at once,
and BCE with sampled negatives (Kang / ICLRec / MOJITO) on gathered candidate scores."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossPositions = Literal["all", "last"]

CE_ROWS_PER_THREAD = 64  # rows of logits formed at a time, per torch thread: the [c, V] block stays in cache through
#                         the softmax passes (Beauty's CE on the Zen 5 host under MKL, forward + backward: 1 thread
#                         64 rows 39 ms vs 128 rows 42-53 ms; 2 threads 128 rows 24 ms vs 256 rows 25 ms, 512 35 ms)


def target_positions(targets: Tensor, positions: LossPositions = "all") -> Tensor:
    """[B, L] targets → [B, L] bool: the positions that carry a loss (non-pad; only the last with 'last')."""
    if positions not in ("all", "last"):
        raise ValueError(f"loss_positions must be 'all' or 'last', got {positions!r}")
    mask = targets > 0
    if positions == "last":
        last = torch.zeros_like(mask)
        last[:, -1] = True
        mask = mask & last
    return mask


def item_cross_entropy(states: Tensor, item_table: Tensor, targets: Tensor, chunk: int | None = None,
                       matmul_dtype: torch.dtype | None = None) -> Tensor:
    """Mean softmax CE over items 1..n_items: ``states`` [P, d] scored against ``item_table`` [n_items + 1, d]
    without its padding row 0, ``targets`` [P] in 1..n_items.

    Equal to ``F.cross_entropy(states @ item_table[1:].T, targets - 1)`` (values and both gradients, fp32), but
    fused: per chunk of ``chunk`` rows (None: ``CE_ROWS_PER_THREAD`` per torch thread) the logits are formed in one
    reused block, the loss read off (max-shifted log-sum-exp) and the gradient (softmax − one-hot) formed in place and
    multiplied out at once (the 1/P applied to the [P, d] and [V, d] results), so neither the [P, V] logits nor their
    gradient ever exist whole. Matmuls run in ``matmul_dtype`` (None: the autocast dtype inside autocast, else the
    inputs'); softmax and loss always accumulate in fp32.
    """
    if states.dim() != 2 or item_table.dim() != 2 or states.shape[1] != item_table.shape[1]:
        raise ValueError(f"states [P, d] and item_table [V, d] must share d, got {tuple(states.shape)} and "
                         f"{tuple(item_table.shape)}")
    if targets.shape != states.shape[:1]:
        raise ValueError(f"targets must be [P] = [{states.shape[0]}], got {tuple(targets.shape)}")
    if matmul_dtype is None:
        matmul_dtype = (torch.get_autocast_dtype(states.device.type)
                        if torch.is_autocast_enabled(states.device.type) else states.dtype)
    if chunk is None:
        chunk = CE_ROWS_PER_THREAD * torch.get_num_threads()
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 row, got {chunk}")
    grads = torch.is_grad_enabled() and (states.requires_grad or item_table.requires_grad)
    with torch.autocast(states.device.type, enabled=False):
        return _LinearCrossEntropy.apply(states, item_table, targets, chunk, matmul_dtype, grads)


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, when gradients are needed, both gradients (scaled in backward)."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, table: Tensor, targets: Tensor, chunk: int, dtype: torch.dtype,
                grads: bool) -> Tensor:
        P = h.shape[0]
        W = table[1:].to(dtype)                                                   # [V, d]
        W_t = W.t().contiguous()                                                  # [d, V]: row-major logits mm
        want_h, want_w = grads and ctx.needs_input_grad[0], grads and ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if want_h else None
        # the table's gradient is accumulated transposed, [d, V] += hcᵀ·grad: equal bit for bit here, and ~5 %
        # faster per CE step than [V, d] += gradᵀ·hc (Beauty, 128-row chunks, one Zen 5 core under MKL)
        grad_wt = torch.zeros(W_t.shape, dtype=torch.float32, device=h.device) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        # one [chunk, V] block for every chunk's logits: a fresh 6 MB block per chunk costs page faults on its first
        # touch (Beauty's CE on the Zen 5 host: ~5,600 faults and ~30 % of the CE's time)
        block = torch.empty(min(chunk, P), W_t.shape[1], dtype=dtype, device=h.device)
        for start in range(0, P, chunk):
            hc, tc = h[start:start + chunk].to(dtype), targets[start:start + chunk, None] - 1   # [c, d], [c, 1]
            p = torch.mm(hc, W_t, out=block[:len(hc)]).float()                    # [c, V] logits, then softmax
            target_logit = p.gather(1, tc)                                        # [c, 1]
            row_max = p.amax(1, keepdim=True)
            row_sum = p.sub_(row_max).exp_().sum(1, keepdim=True)                 # p = exp(logit − max), in place
            total += (row_max + row_sum.log() - target_logit).sum()               # −log softmax at the target
            if want_h or want_w:
                grad = p.div_(row_sum)                                            # softmax, in place
                grad = grad.scatter_add_(1, tc, grad.new_full(tc.shape, -1.0)).to(dtype)   # p − one-hot
                if want_h:
                    grad_h[start:start + chunk] = grad @ W
                if want_w:
                    if dtype == torch.float32:
                        grad_wt.addmm_(hc.T, grad)
                    else:
                        grad_wt += (hc.T @ grad).float()
        if want_h:
            grad_h /= P                                                           # the mean over P rows
        if want_w:
            grad_wt /= P
        ctx.save_for_backward(grad_h if want_h else None, grad_wt.T if want_w else None)
        ctx.table_dtype = table.dtype
        return total / P

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        grad_h, grad_w = ctx.saved_tensors
        if grad_h is not None:
            grad_h = grad_h * grad_out
        if grad_w is not None:
            grad_w = F.pad(grad_w * grad_out, (0, 0, 1, 0)).to(ctx.table_dtype)   # row 0 (padding): no grad
        return grad_h, grad_w, None, None, None, None


def candidate_scores(states: Tensor, item_table: Tensor, candidates: Tensor) -> Tensor:
    """<states, item_table[candidates]>: states [P, d], candidates [P, K] ids → [P, K] (sampled scoring)."""
    return torch.einsum("pd,pkd->pk", states, item_table[candidates])


def bce_with_negatives(pos: Tensor, neg: Tensor) -> Tensor:
    """-log σ(pos) - Σ_k log(1 - σ(neg_k)), averaged over samples. ``pos`` [P], ``neg`` [P, K]."""
    return -(F.logsigmoid(pos.float()) + F.logsigmoid(-neg.float()).sum(-1)).mean()
