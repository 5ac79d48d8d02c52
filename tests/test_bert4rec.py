"""BERT4Rec (docs/baselines.md §2): the bidirectional mask, cloze masking and the inference-time mask against
naive loops, the training sequences, shapes, padding invariance, the CE loss with the output bias, and
learnability on the synthetic data."""

import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.bert4rec import BERT4Rec, BERT4RecConfig, cloze, training_sequences, with_mask_appended
from seqrec_lib.models.layers import attention_mask
from seqrec_lib.models.tokens import TokenLayout
from seqrec_lib.train import TrainConfig, torch_threads, train_and_evaluate
from tests.helpers import random_batch


def make(n_items=30, **kw) -> BERT4Rec:
    torch.manual_seed(0)
    return BERT4Rec(BERT4RecConfig(d=16, max_len=8, **kw), n_items).eval()


def test_bidirectional_mask_matches_naive_rule_and_causal_is_unchanged():
    items = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    m = attention_mask(items, causal=False)[:, 0]
    for b in range(2):
        for i in range(4):
            for j in range(4):
                assert bool(m[b, i, j]) == (bool(items[b, j] > 0) or i == j)
    assert torch.equal(attention_mask(items, causal=True), attention_mask(items))
    layout = TokenLayout.from_items(items, causal=False)
    assert torch.equal(layout.attention, m[:, None])


def test_cloze_masking_matches_a_loop():
    g = torch.Generator().manual_seed(1)
    items = random_batch(B=6, L=8, seed=3).items
    items[5] = 0
    items[5, -1] = 4                                        # a one-item sequence
    u = torch.rand(items.shape, generator=g)
    u[0] = 0.9                                              # nothing drawn: one position is forced
    inputs, targets = cloze(items, u, 0.3, mask_id=99)
    for b in range(6):
        real = [j for j in range(8) if items[b, j] > 0]
        chosen = {j for j in real if u[b, j] < 0.3}
        if not chosen:
            chosen = {min(real, key=lambda j: u[b, j])}
        for j in range(8):
            assert int(inputs[b, j]) == (99 if j in chosen else int(items[b, j]))
            assert int(targets[b, j]) == (int(items[b, j]) if j in chosen else 0)


def test_inference_input_and_training_sequences_match_loops():
    batch = random_batch(B=5, L=8, seed=4)
    shifted = with_mask_appended(batch.items, 99)
    seqs = training_sequences(batch)
    for b in range(5):
        real = batch.items[b][batch.items[b] > 0].tolist()
        expected = ([0] * 8 + real + [99])[-8:]
        assert shifted[b].tolist() == expected
        expected_train = ([0] * 8 + real + [int(batch.targets[b, -1])])[-8:]
        assert seqs[b].tolist() == expected_train


def test_prediction_reads_the_mask_slot_and_sees_the_whole_input():
    model = make()
    batch = random_batch(B=4, L=8, seed=2)
    out = model(batch, return_attention=True)
    assert out.states.shape == (4, 8, 16)
    shifted = with_mask_appended(batch.items, model.mask_id)
    for a in out.attention:
        assert a.shape == (4, 2, 8, 8)
        keys_pad = (shifted == 0)[:, None, None, :] & (shifted > 0)[:, None, :, None]
        assert torch.all(a.masked_select(keys_pad) == 0), "a real query attends to padding"
        assert a.triu(1).sum() > 0, "bidirectional attention sees later positions"
    scores = model.predict(batch)
    torch.testing.assert_close(scores, out.states[:, -1] @ model.item_embedding.T + model.bias)
    assert scores.shape == (4, 31)
    cand = torch.randint(1, 31, (4, 6))
    torch.testing.assert_close(model.predict(batch, cand), scores.gather(1, cand))
    # every input item, the oldest kept included, changes the prediction (not causal)
    items = batch.items.clone()
    first = (items[0] > 0).nonzero()[1, 0]                  # the oldest item the shifted input keeps
    items[0, first] = items[0, first] % 30 + 1
    changed = model.predict(Batch(batch.users, items, batch.targets))
    assert not torch.allclose(changed[0], scores[0]) and torch.allclose(changed[1:], scores[1:])


def test_padding_does_not_change_the_prediction():
    model = make()
    short = torch.tensor([[0, 7, 8, 9]])                  # one free slot: the mask fits without dropping 7
    padded = torch.tensor([[0, 0, 0, 0, 0, 7, 8, 9]])
    a = model.predict(Batch(torch.tensor([1]), short, short))
    b = model.predict(Batch(torch.tensor([1]), padded, padded))
    torch.testing.assert_close(a, b)


def test_loss_is_softmax_ce_with_bias_at_the_masked_positions():
    model = make()
    with torch.no_grad():
        model.bias.normal_()
    batch = random_batch(B=4, L=8, seed=5)
    torch.manual_seed(3)
    loss = model.loss(batch)
    torch.manual_seed(3)
    seqs = training_sequences(batch)
    inputs, targets = cloze(seqs, torch.rand(seqs.shape), model.config.mask_prob, model.mask_id)
    out, layout = model.encode(inputs)
    states = layout.to_full(out.states)
    E, terms = model.item_embedding, []
    for b in range(4):
        for t in range(8):
            if targets[b, t]:
                logits = states[b, t] @ E[1:].T + model.bias[1:]
                terms.append(-torch.log_softmax(logits, 0)[int(targets[b, t]) - 1])
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    model.train()
    model.loss(batch).backward()
    assert model.bias.grad.abs().sum() > 0
    assert model.encoder.embedding.item.weight.grad[model.mask_id].abs().sum() > 0, "the mask row is trained"


@pytest.mark.slow
def test_bert4rec_beats_most_popular_on_synthetic_data():
    """BERT4Rec learns slowly (docs/baselines.md §2): a world with a strong series signal, 40 epochs."""
    config = SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, p_series=0.6, seed=3)
    split = build_splits(generate_synthetic(config)[0], max_len=20)
    train = TrainConfig(epochs=40, patience=40, batch_size=64, lr=5e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        model = BERT4RecConfig(d=32, max_len=20, attn_dropout=0.1, hidden_dropout=0.1)
        _, bert = train_and_evaluate("bert4rec", split, model, train)
    p, b = pop["metrics"]["test"]["full"], bert["metrics"]["test"]["full"]
    assert b["NDCG@10"] > 2 * p["NDCG@10"], (b, p)
    assert b["HR@10"] > p["HR@10"] + 0.1, (b, p)
