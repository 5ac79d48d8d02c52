"""CL4SRec (docs/baselines.md §4): the contrastive loss against a per-pair computation, the three augmentations
against per-sequence loops, the total loss, SASRec behaviour at λ = 0, and learnability on the synthetic data."""

import pytest
import dataclasses

import torch

from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.cl4srec import CL4SRec, CL4SRecConfig, augment, crop, mask, nt_xent, reorder
from seqrec_lib.models.sasrec import SASRec
from seqrec_lib.train import TrainConfig, torch_threads, train_and_evaluate
from tests.helpers import random_batch


def make(n_items=30, **kw) -> CL4SRec:
    torch.manual_seed(0)
    return CL4SRec(CL4SRecConfig(d=16, max_len=8, **kw), n_items).eval()


def test_nt_xent_matches_a_per_pair_computation():
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    z = torch.cat([z1, z2])
    tau, terms = 0.7, []
    for i in range(10):
        positive = (i + 5) % 10
        others = [k for k in range(10) if k != i]
        denominator = sum(torch.exp(z[i] @ z[k] / tau) for k in others)
        terms.append(-torch.log(torch.exp(z[i] @ z[positive] / tau) / denominator))
    torch.testing.assert_close(nt_xent(z1, z2, tau), torch.stack(terms).mean())


def _real(row: torch.Tensor) -> list[int]:
    return row[row > 0].tolist()


def _left_pad(seq: list[int], L: int) -> list[int]:
    return [0] * (L - len(seq)) + seq


def test_augmentations_match_per_sequence_loops():
    batch = random_batch(B=8, L=8, seed=3)
    g = torch.Generator().manual_seed(2)
    u1, u2, uu = torch.rand(8, generator=g), torch.rand(8, generator=g), torch.rand(8, 8, generator=g)
    cropped, masked, shuffled = crop(batch.items, 0.4, u1), mask(batch.items, 0.6, uu, 99), \
        reorder(batch.items, 0.5, u2, uu)
    for b in range(8):
        seq, n = _real(batch.items[b]), int((batch.items[b] > 0).sum())
        k = min(max(1, int(0.4 * n)), n)
        start = int(float(u1[b]) * (n - k + 1))
        assert cropped[b].tolist() == _left_pad(seq[start:start + k], 8)
        u = uu[b, 8 - n:].tolist()                               # the uniforms of the real positions
        m = int(0.6 * n)
        hidden = sorted(range(n), key=lambda j: u[j])[:m]
        assert masked[b].tolist() == _left_pad([99 if j in hidden else x for j, x in enumerate(seq)], 8)
        r = int(0.5 * n)
        s = int(float(u2[b]) * (n - r + 1))
        run = sorted(range(s, s + r), key=lambda j: u[j])        # the run's items in the order of their u
        expected = seq[:s] + [seq[j] for j in run] + seq[s + r:]
        assert shuffled[b].tolist() == _left_pad(expected, 8)


def test_random_views_are_one_of_the_three_augmentations():
    config = CL4SRecConfig()
    items = random_batch(B=32, L=8, seed=4).items
    torch.manual_seed(0)
    views = augment(items, config, 99)
    for b in range(32):
        seq, view = _real(items[b]), _real(views[b])
        is_crop = any(seq[i:i + len(view)] == view for i in range(len(seq) - len(view) + 1)) and len(view) >= 1
        is_mask = len(view) == len(seq) and all(v in (x, 99) for v, x in zip(view, seq))
        is_reorder = sorted(view) == sorted(seq)
        assert is_crop or is_mask or is_reorder


def test_loss_is_ce_plus_weighted_contrastive_term_and_lambda_zero_is_sasrec():
    model = make(cl_weight=0.5, temperature=0.8)
    batch = random_batch(seed=5)
    torch.manual_seed(7)
    loss = model.loss(batch)
    torch.manual_seed(7)
    rec = SASRec.loss(model, batch)
    views = [augment(batch.items, model.config, model.mask_id) for _ in range(2)]
    last = [model(dataclasses.replace(batch, items=v)).states[:, -1] for v in views]
    torch.testing.assert_close(loss, rec + 0.5 * nt_xent(last[0], last[1], 0.8))
    assert model.item_embedding.shape == (31, 16) and model.encoder.embedding.item.weight.shape == (32, 16)
    assert model.predict(batch).shape == (4, 31)
    plain = dataclasses.replace(model.config, cl_weight=0.0)
    model.config = plain
    torch.testing.assert_close(model.loss(batch), SASRec.loss(model, batch))


@pytest.mark.slow
def test_cl4srec_beats_most_popular_on_synthetic_data():
    """The contrastive term slows learning at this size (docs/baselines.md §4): 20 epochs at lr 5e-3."""
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=20, patience=20, batch_size=64, lr=5e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        config = CL4SRecConfig(d=32, max_len=20, attn_dropout=0.2, hidden_dropout=0.2)
        _, cl = train_and_evaluate("cl4srec", split, config, train)
    p, c = pop["metrics"]["test"]["full"], cl["metrics"]["test"]["full"]
    assert c["NDCG@10"] > 1.3 * p["NDCG@10"], (c, p)
    assert c["HR@10"] > p["HR@10"] + 0.04, (c, p)
