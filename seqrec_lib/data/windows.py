"""MOJITO's training windows (docs/data.md §8, official ``Dataset.train_interaction_indexes``).

For a user whose training sequence is ``s_0..s_{n-1}`` (``last = n - 1``) the official code builds one
SASRec-style sample per target index in

    I_u = [last] + list(range(last, max_len - 1, -step))

so ``last`` appears twice when ``last >= max_len``, users with ``last < max_len`` get a single sample, and
with ``step > max_len`` the transitions between windows are never targets. Sample ``t`` has inputs
``s_{t-max_len..t-1}`` and targets ``s_{t-max_len+1..t}``, which is ``make_samples`` with ``end = t``.
"""

from __future__ import annotations

import numpy as np


def window_ends(lengths: np.ndarray, step: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Training lengths [U] (user u at index u-1) → (users [S] 1-based, ends [S]), in the order of ``I_u``.

    ``lengths`` are the lengths ``n`` of the users' *training* sequences (``s[:-2]`` of the leave-one-out
    split), each at least 2. ``ends`` are the target indices ``t`` of ``I_u``, which are also the exclusive
    input ends that ``make_samples`` takes (inputs ``s[:t]``, last target ``s[t]``).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if step < 1:
        raise ValueError(f"samples_step must be at least 1, got {step}")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    if np.any(lengths < 2):
        bad = int(np.flatnonzero(lengths < 2)[0])
        raise ValueError(f"user {bad + 1} has {int(lengths[bad])} training items; a window needs at least 2")
    last = lengths - 1                                                       # [U]
    # len(range(last, max_len - 1, -step)) = floor((last - max_len) / step) + 1 when last >= max_len
    extra = np.where(last >= max_len, (last - max_len) // step + 1, 0)      # [U]
    counts = 1 + extra                                                       # [U] samples per user
    users = np.repeat(np.arange(1, len(lengths) + 1, dtype=np.int64), counts)  # [S]
    first = np.repeat(np.cumsum(counts) - counts, counts)                    # [S] index of the user's 1st sample
    k = np.arange(int(counts.sum()), dtype=np.int64) - first                 # [S] 0, 1, 2, ... within a user
    ends = np.repeat(last, counts) - np.maximum(k - 1, 0) * step            # last, last, last-step, ...
    return users, ends
