"""CORE (docs/baselines.md §9): the weighted-sum session vector and the cosine/τ scores and loss against a per-position
loop, every position equal to its prefix alone (``from_start``), dropout on the item table, full-ranking scores,
determinism, and learnability on the synthetic data."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.core import CORE, COREConfig
from seqrec_lib.models.layers import Int16Dropout
from seqrec_lib.models.tokens import TokenLayout
from seqrec_lib.train import TrainConfig, torch_threads, train_and_evaluate
from tests.helpers import random_batch

NO_DROPOUT = dict(attn_dropout=0.0, hidden_dropout=0.0, sess_dropout=0.0, item_dropout=0.0)


def make(n_items=30, **kw) -> CORE:
    torch.manual_seed(0)
    return CORE(COREConfig(d=16, max_len=8, temperature=0.3, **kw), n_items)


def test_session_vectors_scores_and_loss_match_a_loop():
    model, batch = make().eval(), random_batch(B=5, L=8, seed=2)
    E, tau = model.item_embedding, 0.3
    H = model.encoder(batch.items, TokenLayout.from_items(batch.items, packed=False)).states.view(5, 8, 16)
    states, scores = model(batch).states, model.predict(batch)                  # [B, L, d], [B, V + 1]
    unit = torch.stack([v / v.norm() if v.norm() > 0 else v for v in E])         # E_v / ‖E_v‖ (row 0 stays 0)
    terms = []
    for b in range(5):
        real = [i for i in range(8) if batch.items[b, i] > 0]
        for t in real:
            logits = torch.stack([model.logit(H[b, i])[0] for i in real if i <= t])
            alpha = torch.softmax(logits, 0)
            h = sum(a * E[batch.items[b, i]] for a, i in zip(alpha, [i for i in real if i <= t]))
            h = h / h.norm()
            torch.testing.assert_close(states[b, t], h)
            s = torch.stack([h @ unit[v] for v in range(31)]) / tau              # cosine / τ over 0..V
            if t == 7:
                torch.testing.assert_close(scores[b], s)
            if batch.targets[b, t] > 0:
                terms.append(-torch.log_softmax(s[1:], 0)[batch.targets[b, t] - 1])
    torch.testing.assert_close(model.loss(batch), torch.stack(terms).mean())
    assert scores.shape == (5, 31)
    candidates = torch.tensor([[3, 1, 30]] * 5)
    torch.testing.assert_close(model.predict(batch, candidates), scores.gather(1, candidates))


def test_every_position_is_its_prefix_alone_with_from_start_positions():
    """RecBole trains one sample per prefix; a target at every position trains the same pairs."""
    model, batch = make(positions="from_start").eval(), random_batch(B=4, L=8, seed=3)
    states = model(batch).states
    for b in range(4):
        for t in range(8):
            if batch.items[b, t] > 0:
                prefix = torch.cat([torch.zeros(7 - t, dtype=torch.long), batch.items[b, :t + 1]])[None]
                alone = model(dataclasses.replace(batch.select(torch.tensor([b])), items=prefix), last_only=True)
                torch.testing.assert_close(states[b, t], alone.states[0, 0])


def test_item_dropout_drops_the_scored_table_in_training_only():
    model, batch = make(**{**NO_DROPOUT, "item_dropout": 0.4}).train(), random_batch(seed=4)
    torch.manual_seed(9)
    loss = model.loss(batch)
    torch.manual_seed(9)                                                         # the only draw: the table's mask
    table = F.normalize(Int16Dropout(0.4).train()(model.item_embedding), dim=-1)[1:]
    h = model.eval()(batch).states[batch.targets > 0] / 0.3
    expected = F.cross_entropy(h @ table.T, batch.targets[batch.targets > 0] - 1)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, model.loss(batch))                           # eval: the whole table


def test_determinism_packing_and_init():
    batch = random_batch(seed=5)
    runs = []
    for seed in (1, 1, 2):
        model = make().train()
        torch.manual_seed(seed)
        runs.append(model.loss(batch))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    model.packed = False                                                         # every padded position: the same
    torch.manual_seed(2)                                                         # dropout draws, the same loss
    torch.testing.assert_close(model.loss(batch), runs[2])
    assert torch.equal(make().item_embedding, make().item_embedding)
    assert make().item_embedding[0].abs().sum() == 0                             # the padding row
    with pytest.raises(ValueError, match="temperature"):
        COREConfig(temperature=0.0)


@pytest.mark.slow
def test_core_beats_most_popular_on_synthetic_data():
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=15, patience=15, batch_size=64, lr=5e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        config = COREConfig(d=32, max_len=20, attn_dropout=0.2, hidden_dropout=0.2)
        _, core = train_and_evaluate("core", split, config, train)
    p, c = pop["metrics"]["test"]["full"], core["metrics"]["test"]["full"]
    assert c["NDCG@10"] > 1.5 * p["NDCG@10"], (c, p)
    assert c["HR@10"] > p["HR@10"] + 0.06, (c, p)
