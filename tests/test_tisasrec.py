"""TiSASRec (docs/baselines.md §3): the interval matrix against a per-pair loop, the factorised interval
attention against the direct [B, W, W, d] computation, timestamps in the split, causality, packed = padded,
padding invariance, and learnability on the synthetic data."""

import math

import numpy as np
import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.tisasrec import TiSASRec, TiSASRecConfig, time_intervals
from seqrec_lib.models.tokens import TokenLayout
from seqrec_lib.train import TrainConfig, torch_threads, train_and_evaluate
from tests.helpers import random_batch, random_sequences


def timed_batch(B=4, L=8, seed=0, n_items=30) -> Batch:
    """A left-padded batch with increasing timestamps (ties and gaps of minutes to days), 0 at padding."""
    batch = random_batch(n_items=n_items, B=B, L=L, seed=seed)
    g = torch.Generator().manual_seed(seed)
    gaps = torch.randint(0, 4, (B, L), generator=g) * torch.randint(60, 3 * 86400, (B, L), generator=g)
    stamps = 1_600_000_000 + gaps.cumsum(1)
    return Batch(batch.users, batch.items, batch.targets, timestamps=stamps.masked_fill(batch.items == 0, 0))


def make(n_items=30, **kw) -> TiSASRec:
    torch.manual_seed(0)
    return TiSASRec(TiSASRecConfig(d=16, max_len=8, **kw), n_items).eval()


def intervals_loop(stamps: list[int], span: int) -> list[list[int]]:
    """TiSASRec's preprocessing for one window: scale = the smallest positive consecutive gap (1 if none),
    personal time = round((t - t_min) / scale), interval = min(|p_i - p_j|, span) (computeRePos)."""
    gaps = {b - a for a, b in zip(stamps, stamps[1:]) if b - a != 0}
    scale = min(gaps) if gaps else 1
    p = [round((t - min(stamps)) / scale) for t in stamps]
    return [[min(abs(pi - pj), span) for pj in p] for pi in p]


@pytest.mark.parametrize("span", [3, 256])
def test_interval_matrix_matches_a_per_pair_loop(span):
    batch = timed_batch(B=6, seed=1)
    batch.timestamps[2] = torch.where(batch.items[2] > 0, 1_600_000_000, 0)   # every item at the same time
    r = time_intervals(batch.timestamps, batch.items > 0, span)
    for b in range(6):
        real = (batch.items[b] > 0).nonzero().squeeze(1).tolist()
        expected = intervals_loop([int(batch.timestamps[b, j]) for j in real], span)
        got = r[b][real][:, real].tolist()
        assert got == expected
        pad = batch.items[b] == 0
        assert torch.all(r[b][pad] == 0) and torch.all(r[b][:, pad] == 0)


def test_interval_attention_equals_the_direct_computation():
    """Q·R^K[r_ij] by gathering Q·R^K over all r, and Σ_j A_ij R^V[r_ij] by mass per interval, equal the
    [B, H, W, W, e] computation with the interval embeddings gathered per pair."""
    model = make(time_span=5)
    attention, RK_table, RV_table = model.encoder.attention[0], model.encoder.interval_key, model.encoder.interval_value
    with torch.no_grad():
        RK_table.weight.normal_()
        RV_table.weight.normal_()
    batch = timed_batch(seed=2)
    layout = TokenLayout.from_items(batch.items, packed=False)
    r = time_intervals(batch.timestamps, batch.items > 0, 5)
    x = torch.randn(layout.n_tokens, 16)
    y, probs, heads = attention(x, layout, r, RK_table.weight, RV_table.weight, return_attention=True)
    B, L, H, e = 4, 8, 2, 8
    split = lambda t: t.view(B, L, H, e).transpose(1, 2)                                   # noqa: E731
    q, k, v = split(attention.query(x)), split(attention.key(x)), split(attention.value(x))
    RK = RK_table(r).view(B, L, L, H, e).permute(0, 3, 1, 2, 4)             # [B, H, L, L, e]
    RV = RV_table(r).view(B, L, L, H, e).permute(0, 3, 1, 2, 4)
    scores = (q @ k.transpose(-1, -2) + (q[:, :, :, None] * RK).sum(-1)) / math.sqrt(e)
    expected = torch.softmax(scores.masked_fill(~layout.attention, torch.finfo(scores.dtype).min), -1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(heads, expected @ v + (expected[..., None] * RV).sum(-2))
    ctx = heads.transpose(1, 2).reshape(B * L, 16)
    torch.testing.assert_close(y, attention.norm(x + attention.out(ctx)))


def test_split_carries_timestamps_at_the_inputs():
    data = random_sequences(n_users=6, min_len=5, max_len=12, with_time=True)
    split = build_splits(data, max_len=8)
    for batch, end in ((split.train, 3), (split.valid, 2), (split.test, 1)):
        for u in range(6):
            seq = np.arange(data.offsets[u], data.offsets[u + 1])[:-end][-8:]
            row = batch.timestamps[u]
            assert row[8 - len(seq):].tolist() == data.timestamps[seq].tolist()
            assert torch.all(row[:8 - len(seq)] == 0)
    assert build_splits(random_sequences(), max_len=8).train.timestamps is None


def test_timestamps_are_required():
    split = build_splits(random_sequences(), max_len=8)
    with pytest.raises(ValueError, match="needs timestamps"):
        TiSASRec.from_split(TiSASRecConfig(d=16, max_len=8), split)
    with pytest.raises(ValueError, match="timestamps"):
        make()(random_batch())


def test_shapes_causality_and_candidates():
    model = make()
    batch = timed_batch(seed=3)
    out = model(batch, return_attention=True)
    assert out.states.shape == (4, 8, 16) and len(out.attention) == 2
    for a in out.attention:
        assert a.shape == (4, 2, 8, 8) and torch.all(a.triu(1) == 0)
    scores = model.predict(batch)
    assert scores.shape == (4, 31)
    torch.testing.assert_close(scores, out.states[:, -1] @ model.item_embedding.T)
    cand = torch.randint(1, 31, (4, 6))
    torch.testing.assert_close(model.predict(batch, cand), scores.gather(1, cand))
    # causal in the items; the window's time scale (its smallest gap) is shared by all positions, as
    # TiSASRec's per-user scale (docs/baselines.md §3), so only later *items* are changed here
    items = batch.items.clone()
    items[:, 6:] = torch.randint(1, 31, (4, 2))
    changed = model(Batch(batch.users, items, batch.targets, timestamps=batch.timestamps)).states
    before = model(batch).states
    torch.testing.assert_close(changed[:, :6], before[:, :6])
    assert not torch.allclose(changed[:, 6:], before[:, 6:])


def test_packed_equals_padded_and_times_matter():
    model = make()
    batch = timed_batch(seed=4)
    model.train()
    torch.manual_seed(1)
    packed_loss = model.loss(batch.with_negatives(torch.randint(1, 31, (4, 8, 1))))
    model.packed = False
    torch.manual_seed(1)
    padded_loss = model.loss(batch.with_negatives(torch.randint(1, 31, (4, 8, 1))))
    torch.testing.assert_close(packed_loss, padded_loss)
    model.eval()
    with torch.no_grad():
        model.encoder.interval_key.weight.normal_()
    scaled = Batch(batch.users, batch.items, batch.targets, timestamps=batch.timestamps * 7)
    torch.testing.assert_close(model.predict(scaled), model.predict(batch))   # personal time: scale-free
    later = batch.timestamps.clone()
    later[:, -1] += 10 * 86400
    assert not torch.allclose(model.predict(Batch(batch.users, batch.items, batch.targets, timestamps=later)),
                              model.predict(batch))


def test_padding_does_not_change_the_prediction():
    model = make()
    items = torch.tensor([[0, 0, 0, 0, 0, 7, 8, 9]])
    stamps = torch.tensor([[0, 0, 0, 0, 0, 1_600_000_000, 1_600_003_600, 1_600_090_000]])
    padded = model.predict(Batch(torch.tensor([1]), items, items, timestamps=stamps))
    alone = model.predict(Batch(torch.tensor([1]), items[:, -3:], items[:, -3:], timestamps=stamps[:, -3:]))
    torch.testing.assert_close(padded, alone)


@pytest.mark.slow
def test_tisasrec_beats_most_popular_on_synthetic_data():
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=12, patience=12, batch_size=64, lr=3e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        config = TiSASRecConfig(d=32, max_len=20, attn_dropout=0.2, hidden_dropout=0.2, loss="ce")
        _, ti = train_and_evaluate("tisasrec", split, config, train)
    p, t = pop["metrics"]["test"]["full"], ti["metrics"]["test"]["full"]
    assert t["NDCG@10"] > 2 * p["NDCG@10"], (t, p)
    assert t["HR@10"] > p["HR@10"] + 0.1, (t, p)
