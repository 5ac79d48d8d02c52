"""The matrices behind the head heatmaps: per pair of heads, distances averaged over users, consistent with
the head-diversity table (its mean is the mean of the off-diagonal entries); one user's attention maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_lib.analysis import attention_maps, head_distance_matrices, per_user_head_distances
from seqrec_lib.models.sasrec import SASRec, SASRecConfig
from tests.helpers import tiny_split

L = 10


@pytest.fixture(scope="module")
def split():
    return tiny_split(max_len=L)


@pytest.fixture(scope="module")
def model(split):
    torch.manual_seed(0)
    return SASRec(SASRecConfig(d=16, n_heads=4, n_blocks=2, max_len=L), split.n_items)


def _naive(model, split, quantity: str) -> list[np.ndarray]:
    """Per user, per pair, on the non-padded block, with loops."""
    batch = split.eval_set("test")
    with torch.no_grad():
        out = model.eval()(batch, return_attention=True)
    result = []
    for a, o in zip(out.attention, out.head_outputs):
        H = a.shape[1]
        total = np.zeros((H, H))
        for u in range(len(batch)):
            keep = (batch.items[u] > 0).numpy()
            n = keep.sum()
            for h in range(H):
                for g in range(H):
                    if quantity.startswith("attention"):
                        x, y = a[u, h].numpy()[keep][:, keep], a[u, g].numpy()[keep][:, keep]
                    else:
                        x, y = o[u, h].numpy()[keep], o[u, g].numpy()[keep]
                    d = np.linalg.norm(x.astype(np.float64) - y)
                    total[h, g] += d / np.sqrt(2 * n) if quantity == "attention_norm" else d
        result.append(total / len(batch))
    return result


@pytest.mark.parametrize("quantity", ["attention", "attention_norm", "output"])
def test_matrices_match_a_naive_loop(model, split, quantity: str) -> None:
    got = head_distance_matrices(model, split, quantity)
    want = _naive(model, split, quantity)
    assert len(got) == 2
    for g, w in zip(got, want):
        assert g.shape == (4, 4)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, g.T, atol=1e-12)
        assert (np.diag(g) == 0).all()


def test_off_diagonal_mean_is_the_diversity_mean(model, split) -> None:
    dist = per_user_head_distances(model, split)
    for quantity, table in (("attention", dist.attention), ("output_norm", dist.output_unit)):
        for layer, matrix in enumerate(head_distance_matrices(model, split, quantity)):
            upper = matrix[np.triu_indices(4, k=1)]
            assert upper.mean() == pytest.approx(table[:, layer].mean(), rel=1e-9)


def test_attention_maps_of_one_user(model, split) -> None:
    batch = split.eval_set("test")
    user = int(batch.users[3])
    items, maps = attention_maps(model, split, user)
    n = int((batch.items[3] > 0).sum())
    assert items == [int(i) for i in batch.items[3] if i > 0] and len(items) == n
    assert [m.shape for m in maps] == [(4, n, n)] * 2
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)           # rows are distributions
        assert np.allclose(np.triu(m, k=1), 0.0)                          # causal: no attention to the future
    with pytest.raises(ValueError, match="user 0"):
        attention_maps(model, split, 0)


def test_unknown_quantity(model, split) -> None:
    with pytest.raises(ValueError, match="unknown quantity"):
        head_distance_matrices(model, split, "gate")
