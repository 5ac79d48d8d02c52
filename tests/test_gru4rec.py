"""GRU4Rec (docs/baselines.md §1): the packed GRU equals a step-by-step loop, shapes, causality, padding
invariance, the CE loss, and learnability on the synthetic data."""

import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.gru4rec import GRU4Rec, GRU4RecConfig
from seqrec_lib.train import TrainConfig, torch_threads, train_and_evaluate
from tests.helpers import random_batch


def make(n_items=30, **kw) -> GRU4Rec:
    torch.manual_seed(0)
    return GRU4Rec(GRU4RecConfig(d=8, hidden=12, max_len=8, **kw), n_items).eval()


def gru_loop(model: GRU4Rec, items: list[int]) -> torch.Tensor:
    """The GRU equations one step at a time (PyTorch's gate order r, z, n), from h = 0, then the output map."""
    g = model.gru
    W_ih, W_hh, b_ih, b_hh = g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0
    h, out = torch.zeros(g.hidden_size), []
    for item in items:
        x = model.item.weight[item]
        gi, gh = W_ih @ x + b_ih, W_hh @ h + b_hh
        r = torch.sigmoid(gi[:12] + gh[:12])
        z = torch.sigmoid(gi[12:24] + gh[12:24])
        n = torch.tanh(gi[24:] + r * gh[24:])
        h = (1 - z) * n + z * h
        out.append(model.out(h))
    return torch.stack(out)


def test_packed_gru_equals_a_step_by_step_loop():
    model = make()
    batch = random_batch(B=5, L=8, seed=1)
    with torch.no_grad():
        states = model(batch).states                                              # [B, L, d]
        for b in range(5):
            real = batch.items[b][batch.items[b] > 0].tolist()
            n = len(real)
            torch.testing.assert_close(states[b, 8 - n:], gru_loop(model, real))
            assert torch.all(states[b, :8 - n] == 0)


def test_shapes_last_only_and_candidates():
    model = make()
    batch = random_batch(B=4, L=8, seed=2)
    out = model(batch)
    assert out.states.shape == (4, 8, 8) and out.attention == []
    last = model(batch, last_only=True).states
    assert last.shape == (4, 1, 8)
    torch.testing.assert_close(last[:, 0], out.states[:, -1])
    scores = model.predict(batch)
    assert scores.shape == (4, 31)
    cand = torch.randint(1, 31, (4, 6))
    torch.testing.assert_close(model.predict(batch, cand), scores.gather(1, cand))


def test_causality_future_items_do_not_change_the_past():
    model = make()
    items = torch.randint(1, 31, (2, 8))
    a = model(Batch(torch.tensor([1, 2]), items, items)).states
    changed = items.clone()
    changed[:, 5:] = torch.randint(1, 31, (2, 3))
    b = model(Batch(torch.tensor([1, 2]), changed, changed)).states
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padding_and_batch_neighbours_do_not_change_a_sequence():
    model = make()
    seq = torch.tensor([[0, 0, 0, 0, 0, 7, 8, 9]])
    alone = model(Batch(torch.tensor([1]), seq[:, -3:], seq[:, -3:])).states[0]
    padded = model(Batch(torch.tensor([1]), seq, seq)).states[0, -3:]
    torch.testing.assert_close(alone, padded)
    other = torch.tensor([[1, 2, 3, 4, 5, 6, 10, 11]])
    both = torch.cat([seq, other])
    together = model(Batch(torch.tensor([1, 2]), both, both)).states[0, -3:]
    torch.testing.assert_close(together, padded)


def test_ce_loss_matches_naive_computation_and_trains():
    model = make()
    batch = random_batch(seed=5)
    states, E = model(batch).states, model.item_embedding
    terms = [-torch.log_softmax(states[b, t] @ E[1:].T, 0)[int(batch.targets[b, t]) - 1]
             for b in range(4) for t in range(8) if batch.targets[b, t]]
    torch.testing.assert_close(model.loss(batch), torch.stack(terms).mean())
    model.train()
    model.loss(batch).backward()
    assert model.gru.weight_hh_l0.grad.abs().sum() > 0 and model.out.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_gru4rec_beats_most_popular_on_synthetic_data():
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=20, patience=20, batch_size=64, lr=1e-2, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        _, gru = train_and_evaluate("gru4rec", split, GRU4RecConfig(d=32, hidden=64, max_len=20), train)
    p, g = pop["metrics"]["test"]["full"], gru["metrics"]["test"]["full"]
    assert g["NDCG@10"] > 1.6 * p["NDCG@10"], (g, p)
    assert g["HR@10"] > p["HR@10"] + 0.05, (g, p)
