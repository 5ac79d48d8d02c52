import dataclasses

import pytest
import torch

from seqrec_lib.batch import Batch
from seqrec_lib.models.layers import attention_mask
from seqrec_lib.models.tokens import TokenLayout
from seqrec_lib.models.sasrec import SASRec, SASRecConfig
from tests.helpers import random_batch


def make(n_items=30, **kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(SASRecConfig(d=16, max_len=8, **kw), n_items).eval()


@pytest.mark.parametrize("heads,blocks", [(1, 1), (2, 2), (4, 3), (8, 2), (16, 1)])
def test_shapes_and_attention_rows_sum_to_one(heads, blocks):
    model = make(n_heads=heads, n_blocks=blocks)
    batch = random_batch()
    out = model(batch, return_attention=True)
    assert out.states.shape == (4, 8, 16)
    assert len(out.attention) == blocks and len(out.head_outputs) == blocks
    for a, o in zip(out.attention, out.head_outputs):
        assert a.shape == (4, heads, 8, 8) and o.shape == (4, heads, 8, 16 // heads)
        torch.testing.assert_close(a.sum(-1), torch.ones(4, heads, 8))
        assert torch.all(a.triu(1) == 0), "attention to a future position"
        keys_pad = (batch.items == 0)[:, None, None, :]
        real_query = (batch.items > 0)[:, None, :, None]
        assert torch.all(a.masked_select(keys_pad & real_query) == 0), "a real query attends to padding"
    assert model.predict(batch).shape == (4, 31)


def test_attention_mask_matches_naive_rule():
    items = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    m = attention_mask(items)[:, 0]
    for b in range(2):
        for i in range(4):
            for j in range(4):
                expected = (j <= i and items[b, j] > 0) or i == j
                assert bool(m[b, i, j]) == expected


def test_causality_future_items_do_not_change_the_past():
    model = make()
    batch = random_batch(B=2, L=8, seed=3)
    items = batch.items.clone()
    items[:, :] = torch.randint(1, 31, items.shape)  # no padding
    a = model(Batch(batch.users, items, batch.targets)).states
    changed = items.clone()
    changed[:, 5:] = torch.randint(1, 31, (2, 3))
    b = model(Batch(batch.users, changed, batch.targets)).states
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padding_length_does_not_change_the_last_state():
    model = make()
    short = torch.tensor([[0, 0, 0, 0, 0, 7, 8, 9]])
    longer = torch.tensor([[7, 8, 9]])  # the same sequence with no padding, shorter window
    a = model(Batch(torch.tensor([1]), short, short)).states[:, -1]
    # positions are right-aligned, so the last three slots carry the same position embeddings
    b = model(Batch(torch.tensor([1]), longer, longer)).states[:, -1]
    torch.testing.assert_close(a, b)


def test_all_position_states_equal_prefix_states():
    """All-position CE trains on the same (prefix, next item) pairs as prefix augmentation (docs/sasrec.md §2).

    This holds with positions counted from the sequence start (RecBole); with ICLRec's slot positions
    (the default) a prefix's items sit at other slots, which the next test pins down."""
    model = make(positions="from_start")
    seq = torch.tensor([[0, 0, 4, 9, 2, 11, 5, 3]])
    full = model(Batch(torch.tensor([1]), seq, seq)).states[0]
    for t in range(2, 8):
        prefix = torch.zeros(1, 8, dtype=torch.long)
        prefix[0, 8 - (t + 1):] = seq[0, : t + 1][-(t + 1):]
        out = model(Batch(torch.tensor([1]), prefix, prefix)).states[0, -1]
        torch.testing.assert_close(out, full[t])


def test_slot_positions_make_the_last_item_always_use_the_last_slot():
    model = make()
    seq = torch.tensor([[0, 0, 4, 9, 2, 11, 5, 3]])
    full = model(Batch(torch.tensor([1]), seq, seq)).states[0]
    prefix = torch.tensor([[0, 0, 0, 4, 9, 2, 11, 5]])
    out = model(Batch(torch.tensor([1]), prefix, prefix)).states[0, -1]
    assert not torch.allclose(out, full[6]), "slot positions should differ from the prefix state"
    x0 = model.encoder.embedding.norm(model.encoder.embedding.item(seq) + model.encoder.embedding.position.weight)
    dense = TokenLayout.from_items(seq, packed=False)                       # every position a token
    torch.testing.assert_close(model.encoder.embedding(seq, dense).view(1, 8, -1), x0)


def test_ce_loss_matches_naive_computation():
    model = make()
    batch = random_batch(seed=5)
    loss = model.loss(batch)
    states = model(batch).states
    E = model.item_embedding
    terms = []
    for b in range(4):
        for t in range(8):
            tgt = int(batch.targets[b, t])
            if tgt:
                logits = states[b, t] @ E[1:].T
                terms.append(-torch.log_softmax(logits, 0)[tgt - 1])
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    last = dataclasses.replace(model.config, loss_positions="last")
    model.config = last
    terms_last = [
        -torch.log_softmax(states[b, -1] @ E[1:].T, 0)[int(batch.targets[b, -1]) - 1] for b in range(4)
    ]
    torch.testing.assert_close(model.loss(batch), torch.stack(terms_last).mean())


def test_bce_loss_matches_naive_and_needs_negatives():
    model = make(loss="bce")
    assert model.n_negatives == 1
    batch = random_batch(seed=6)
    with pytest.raises(ValueError, match="negatives"):
        model.loss(batch)
    neg = torch.randint(1, 31, (4, 8, 1))
    batch = batch.with_negatives(neg)
    states, E = model(batch).states, model.item_embedding
    terms = []
    for b in range(4):
        for t in range(8):
            if batch.targets[b, t]:
                pos = states[b, t] @ E[batch.targets[b, t]]
                ng = states[b, t] @ E[neg[b, t, 0]]
                terms.append(-torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(ng)))
    torch.testing.assert_close(model.loss(batch), torch.stack(terms).mean(), rtol=1e-5, atol=1e-6)


def test_candidate_scores_equal_gathered_full_scores():
    model = make()
    batch = random_batch(seed=7)
    full = model.predict(batch)
    cand = torch.randint(1, 31, (4, 6))
    torch.testing.assert_close(model.predict(batch, cand), full.gather(1, cand))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(d=64, n_heads=3)
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(loss="bpr")
    with pytest.raises(ValueError, match="max_len"):
        make()(Batch(torch.tensor([1]), torch.ones(1, 9, dtype=torch.long), torch.ones(1, 9, dtype=torch.long)))
