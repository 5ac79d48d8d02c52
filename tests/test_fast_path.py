"""The fast path against the computation it replaces: packed tokens vs every padded position (states and
gradients, dropout on), the fused linear + cross-entropy vs ``F.cross_entropy`` of the full logits, and the
last-position evaluation forward vs the full forward."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from seqrec_lib.models.fame import Fame, FameConfig
from seqrec_lib.models.losses import item_cross_entropy
from seqrec_lib.models.sasrec import SASRec, SASRecConfig
from seqrec_lib.models import tokens
from seqrec_lib.models.tokens import TokenLayout
from tests.helpers import random_batch

N_ITEMS = 40


@pytest.fixture(params=[1, 64], ids=["buckets", "one-bucket"])
def bucket_min_width(request, monkeypatch):
    """Attention in length buckets of widths 1, 2, 4, 8, W (many buckets), or one bucket of width W."""
    monkeypatch.setattr(tokens, "BUCKET_MIN_WIDTH", request.param)
    return request.param


def build(kind: str, packed: bool, **kw):
    torch.manual_seed(0)
    if kind == "sasrec":
        model = SASRec(SASRecConfig(d=32, max_len=12, **kw), N_ITEMS)
    else:
        model = Fame(FameConfig(d=32, max_len=12, n_experts=3, **kw), N_ITEMS)
        with torch.no_grad():                       # a non-trivial router, gate and FFN'
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    model.packed = packed
    return model


def loss_and_grads(model, batch, train: bool):
    model.train(train)
    model.zero_grad()
    torch.manual_seed(123)                          # the same dropout draws in both layouts
    loss = model.loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind,kw", [("sasrec", {}), ("sasrec", {"loss": "bce"}), ("sasrec", {"n_heads": 4}),
                                     ("sasrec", {"positions": "from_start", "loss_positions": "last"}),
                                     ("fame", {}), ("fame", {"attn_residual": "none", "n_blocks": 3}),
                                     ("fame", {"mixture": "probability", "n_heads": 4})])
@pytest.mark.parametrize("train", [False, True])
def test_packed_equals_padded_loss_and_gradients(kind, kw, train, bucket_min_width):
    batch = random_batch(n_items=N_ITEMS, B=6, L=12, seed=3)
    assert (len(TokenLayout.from_items(batch.items).buckets) > 2) == (bucket_min_width == 1)
    if kw.get("loss") == "bce":
        g = torch.Generator().manual_seed(0)
        batch = batch.with_negatives(torch.randint(1, N_ITEMS + 1, (6, 12, 1), generator=g) * (batch.targets > 0)[..., None])
    padded_loss, padded_grads = loss_and_grads(build(kind, False, **kw), batch, train)
    packed_loss, packed_grads = loss_and_grads(build(kind, True, **kw), batch, train)
    torch.testing.assert_close(packed_loss, padded_loss)
    assert packed_grads.keys() == padded_grads.keys()
    for name in padded_grads:
        torch.testing.assert_close(packed_grads[name], padded_grads[name], msg=name)


@pytest.mark.parametrize("kind", ["sasrec", "fame"])
def test_packed_states_equal_padded_states_at_real_positions(kind, bucket_min_width):
    batch = random_batch(n_items=N_ITEMS, B=5, L=12, seed=4)
    real = batch.items > 0
    padded, packed = build(kind, False).eval(), build(kind, True).eval()
    with torch.no_grad():
        a, b = padded(batch), packed(batch)
    torch.testing.assert_close(b.states[real], a.states[real])
    assert torch.all(b.states[~real] == 0), "padding positions of the packed path are zero"
    for key in b.extras:
        torch.testing.assert_close(b.extras[key].transpose(1, 2)[real] if key == "router" else b.extras[key][real],
                                   a.extras[key].transpose(1, 2)[real] if key == "router" else a.extras[key][real])


@pytest.mark.parametrize("kind", ["sasrec", "fame"])
def test_last_only_forward_gives_the_full_forward_scores(kind, bucket_min_width):
    batch = random_batch(n_items=N_ITEMS, B=7, L=12, seed=6)
    model = build(kind, True).eval()
    with torch.no_grad():
        full = model.score(model(batch), batch)
        last = model.predict(batch)
        cand = torch.randint(1, N_ITEMS + 1, (7, 5))
        torch.testing.assert_close(model.predict(batch, cand), full.gather(1, cand))
    torch.testing.assert_close(last, full)


def test_layout_moves_tokens_and_keeps_positions():
    items = torch.tensor([[0, 0, 0, 5, 6], [0, 1, 2, 3, 4], [0, 0, 0, 0, 9]])
    layout = TokenLayout.from_items(items)
    assert layout.width == 4 and layout.n_tokens == 7
    assert layout.from_full(items).tolist() == [5, 6, 1, 2, 3, 4, 9]
    assert layout.positions.tolist() == [3, 4, 1, 2, 3, 4, 4]
    x = torch.arange(1.0, 8.0)[:, None]                                    # token values 1..7
    assert layout.to_full(x)[..., 0].tolist() == [[0, 0, 0, 1, 2], [0, 3, 4, 5, 6], [0, 0, 0, 0, 7]]
    assert torch.equal(layout.unpad(layout.pad(x)), x)
    assert layout.last_tokens(x)[:, 0].tolist() == [2, 6, 7]
    dense = TokenLayout.from_items(items, packed=False)
    assert dense.width == 5 and dense.n_tokens == 15


def test_length_buckets_partition_the_tokens_and_put_outputs_back(monkeypatch):
    monkeypatch.setattr(tokens, "BUCKET_MIN_WIDTH", 2)
    items = torch.tensor([[0, 0, 0, 0, 5, 6], [0, 1, 2, 3, 4, 7], [0, 0, 0, 0, 0, 9], [0, 0, 0, 8, 3, 2]])
    layout = TokenLayout.from_items(items)                 # lengths 2, 5, 1, 3 → widths 2, 5, 2, 4
    assert [(rows.tolist(), sub.width) for _, rows, sub in layout.buckets] == [([0, 2], 2), ([3], 4), ([1], 5)]
    for token_ids, rows, sub in layout.buckets:
        assert torch.equal(sub.rows, layout.rows[token_ids]) and torch.equal(sub.positions, layout.positions[token_ids])
        assert torch.equal(sub.sequences, rows)
        x = layout.from_full(items)[token_ids].float()[:, None]
        assert torch.equal(sub.unpad(sub.pad(x)), x)
        padded = sub.pad(x)[..., 0]
        assert torch.equal(padded, items[rows][:, -sub.width:].float())   # the bucket's window, left-padded
        assert torch.equal(sub.attention, layout.attention[rows][:, :, -sub.width:, -sub.width:])
    x = torch.arange(1.0, 12.0)[:, None]                                  # token values 1..11
    same, = layout.per_bucket(lambda sub, xs: (xs * 1,), x)
    assert torch.equal(same, x)
    last, none = layout.per_bucket(lambda sub, xs: (sub.last_tokens(xs), None), x, last_only=True)
    assert torch.equal(last, layout.last_tokens(x)) and none is None


def test_layout_dropout_drops_the_same_elements_in_both_layouts_at_rate_p():
    items = random_batch(n_items=N_ITEMS, B=64, L=9, seed=2).items
    packed, padded = TokenLayout.from_items(items), TokenLayout.from_items(items, packed=False)
    x = torch.ones(64, 9, 16, 4)
    for heads_first in (False, True):
        torch.manual_seed(5)
        a = packed.dropout(packed.from_full(x), 0.3, True, heads_first)
        torch.manual_seed(5)
        b = padded.from_full(padded.to_full(padded.dropout(padded.from_full(x), 0.3, True, heads_first)))
        torch.testing.assert_close(a, packed.from_full(padded.to_full(b)))
        assert set(a.unique().tolist()) <= {0.0, torch.tensor(1 / 0.7).item()}
        assert abs(float((a == 0).float().mean()) - 0.3) < 0.02
    torch.manual_seed(5)
    again = packed.dropout(packed.from_full(x), 0.3, True)
    torch.manual_seed(6)
    other = packed.dropout(packed.from_full(x), 0.3, True)
    torch.manual_seed(5)
    assert torch.equal(again, packed.dropout(packed.from_full(x), 0.3, True)) and not torch.equal(again, other)
    assert torch.equal(packed.dropout(x[0, :3], 0.3, training=False), x[0, :3])


def test_attention_dropout_same_entries_in_both_layouts():
    items = random_batch(n_items=N_ITEMS, B=32, L=10, seed=3).items
    packed, padded = TokenLayout.from_items(items), TokenLayout.from_items(items, packed=False)
    off = 10 - packed.width
    torch.manual_seed(1)
    a = packed.attention_dropout(torch.ones(32, 2, packed.width, packed.width), 0.5, True)
    torch.manual_seed(1)
    b = padded.attention_dropout(torch.ones(32, 2, 10, 10), 0.5, True)[:, :, off:, off:]
    allowed = packed.attention[:, :, :, :] & (items[:, off:] > 0)[:, None, :, None]
    torch.testing.assert_close(a * allowed, b * allowed)
    assert torch.all(a[~allowed.expand_as(a)] == 0)
    kept = a[allowed.expand_as(a)]
    assert abs(float((kept == 0).float().mean()) - 0.5) < 0.05


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_fused_cross_entropy_equals_full_logits(chunk):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(50, 16, generator=g, requires_grad=True)
    table = torch.randn(N_ITEMS + 1, 16, generator=g, requires_grad=True)
    targets = torch.randint(1, N_ITEMS + 1, (50,), generator=g)
    fused = item_cross_entropy(h, table, targets, chunk=chunk)
    (fused * 3.0).backward()                               # a non-unit upstream gradient
    gh, gt = h.grad.clone(), table.grad.clone()
    h.grad = table.grad = None
    ref = F.cross_entropy(h @ table[1:].T, targets - 1)
    (ref * 3.0).backward()
    torch.testing.assert_close(fused, ref)
    torch.testing.assert_close(gh, h.grad)
    torch.testing.assert_close(gt, table.grad)
    assert torch.all(gt[0] == 0), "the padding row gets no gradient"


def test_fused_cross_entropy_without_grad_and_through_a_table_function():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(20, 8, generator=g)
    E = torch.randn(N_ITEMS + 1, 8, generator=g, requires_grad=True)
    W = torch.randn(8, 8, generator=g, requires_grad=True)
    targets = torch.randint(1, N_ITEMS + 1, (20,), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(item_cross_entropy(h, E @ W, targets), F.cross_entropy(h @ (E @ W)[1:].T, targets - 1))
    item_cross_entropy(h, E @ W, targets, chunk=6).backward()   # FAME's facet table E W_f
    gE, gW = E.grad.clone(), W.grad.clone()
    E.grad = W.grad = None
    F.cross_entropy(h @ (E @ W)[1:].T, targets - 1).backward()
    torch.testing.assert_close(gE, E.grad)
    torch.testing.assert_close(gW, W.grad)


def test_fused_cross_entropy_bf16_is_close_and_rejects_bad_shapes():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(30, 16, generator=g)
    table = torch.randn(N_ITEMS + 1, 16, generator=g)
    targets = torch.randint(1, N_ITEMS + 1, (30,), generator=g)
    ref = F.cross_entropy(h @ table[1:].T, targets - 1)
    low = item_cross_entropy(h, table, targets, matmul_dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="share d"):
        item_cross_entropy(h, table[:, :8], targets)
    with pytest.raises(ValueError, match="targets"):
        item_cross_entropy(h, table, targets[:5])
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        item_cross_entropy(h, table, targets, chunk=0)


def test_fame_last_only_gives_last_position_extras():
    model = build("fame", True).eval()
    batch = random_batch(n_items=N_ITEMS, B=3, L=12, seed=8)
    with torch.no_grad():
        full, last = model(batch), model(batch, last_only=True)
    assert last.states.shape == (3, 1, 32)
    torch.testing.assert_close(last.extras["gate"][:, -1], full.extras["gate"][:, -1])
    torch.testing.assert_close(last.extras["router"][:, :, -1], full.extras["router"][:, :, -1])
    torch.testing.assert_close(model.head_scores(last), model.head_scores(full))
    cfg = dataclasses.replace(model.config, mixture="probability")
    prob = Fame(cfg, N_ITEMS).eval()
    with torch.no_grad():
        torch.testing.assert_close(prob.predict(batch), prob.score(prob(batch), batch))


def test_late_train_fields_keep_earlier_run_keys_and_change_them_when_set():
    from seqrec_lib.records import config_hash, to_jsonable
    from seqrec_lib.train import TrainConfig
    before = {k: v for k, v in to_jsonable(TrainConfig()).items() if k not in ("precision", "compile")}
    assert config_hash(TrainConfig()) == config_hash(before)           # a record made before the fields existed
    assert config_hash(TrainConfig(precision="bf16")) != config_hash(TrainConfig())
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


def test_bf16_training_epoch_runs_and_stays_close_to_fp32():
    from seqrec_lib.train import Trainer, TrainConfig
    from tests.helpers import tiny_split
    split = tiny_split()
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(d=16, max_len=10), split.n_items)
        trainer = Trainer(TrainConfig(batch_size=16, progress=False, precision=precision))
        losses[precision] = trainer._train_epoch(model, split, torch.optim.Adam(model.parameters()), 0)
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"]


def test_context_embedding_bag_equals_the_linear_layer_over_every_entrys_encodings():
    """The context as an embedding bag over per-feature projections of the distinct values (the fast path) against
    the formula as written: W_c · concat_f Mercer_f(t_f) + b_c, each entry encoded on its own; value and gradients."""
    from seqrec_lib.models.time_context import ContextEmbedding
    torch.manual_seed(0)
    fast = ContextEmbedding(3, 8, 3, 8.0, 16, dropout=0.0).double()
    with torch.no_grad():
        fast.out.bias.normal_()
    naive = copy.deepcopy(fast)
    t = torch.randint(0, 24, (5, 7, 4)).double()                       # many repeated values; the last 3 are read
    enc = naive.mercer
    angle = t[..., 1:, None, None] * (enc.harmonics / 10.0 ** enc.log_period[..., None])    # [5, 7, F, d_t, K]
    K = len(enc.harmonics)
    mercer = ((torch.sin(angle) * enc.basis[..., :K]).sum(-1) + (torch.cos(angle) * enc.basis[..., K:]).sum(-1)
              + enc.bias)                                               # [5, 7, F, d_t]
    want = naive.out(mercer.flatten(-2))                               # [5, 7, d]
    got = fast(t)
    torch.testing.assert_close(got, want)
    weight = torch.randn_like(want)
    (got * weight).sum().backward()
    (want * weight).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), naive.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_channel_mix_equals_the_linear_layer_over_channels():
    from seqrec_lib.models.attention_mixture import channel_mix
    torch.manual_seed(0)
    layer = torch.nn.Linear(2, 3)
    x = torch.randn(4, 2, 6, 6)
    torch.testing.assert_close(torch.stack(channel_mix(x.unbind(1), layer), 1),
                               layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_int16_dropout_has_nn_dropouts_distribution_and_is_identity_in_eval():
    from seqrec_lib.models.layers import Int16Dropout
    torch.manual_seed(0)
    x = torch.ones(200, 50, 64, requires_grad=True)
    layer = Int16Dropout(0.3)
    assert abs(layer.scale - 1 / 0.7) < 1e-5                                # p realised to 2^-16
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005                    # 640k draws: sd of the mean 0.0006
    assert torch.allclose(y[kept], torch.full_like(y[kept], layer.scale))   # inverted scaling
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                                  # d(x·mask)/dx = mask
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(1)
    assert torch.equal(first, layer(x))                                     # seeded: reproducible
    odd = layer(torch.ones(3, 5, 7))                                        # numel not a multiple of 4
    assert odd.shape == (3, 5, 7) and 0 < int((odd != 0).sum()) < 105
    # the four int16 of each 64-bit word are independent, uniform draws: each quarter keeps 70 %
    words = y.detach().reshape(-1, 4) != 0
    assert torch.allclose(words.float().mean(0), torch.full((4,), 0.7), atol=0.01)
    assert Int16Dropout(0.5).threshold == 0 and Int16Dropout(0.0)(x) is x
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="dropout must lie in"):
        Int16Dropout(1.0)


def test_dropout_hash_equals_lowbias32_on_python_integers():
    """keep_scale's int32 arithmetic against the hash written on unbounded Python integers, on indices past 2³¹ and
    2³² (only their low 32 bits count) and thresholds where the sign of the int32 words matters."""
    from seqrec_lib.models.tokens import _hash32, keep_scale

    def lowbias32(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    g = torch.Generator().manual_seed(4)
    edges = torch.tensor([0, 2**31 - 1, 2**31, 2**32 - 1, 2**32])
    element = torch.cat([torch.randint(0, 2**40, (3000,), generator=g), edges])
    for seed, p in ((12345, 0.1), (2**31 - 1, 0.5), (7, 0.9)):
        words = [lowbias32(lowbias32(e & 0xFFFFFFFF) ^ seed) for e in element.tolist()]
        want = torch.tensor([(w >= int(p * 2**32)) / (1 - p) for w in words])
        got = keep_scale(_hash32(element.to(torch.int32)), p, torch.zeros(()), torch.tensor(seed))
        torch.testing.assert_close(got, want.float(), rtol=0, atol=0)


def test_cached_element_hashes_give_a_fresh_layouts_masks():
    """TokenLayout caches the seed-free half of the dropout hash per shape: a layout that has served other shapes and
    seeds drops exactly what a fresh one drops (token dropout, head-first dropout, attention dropout)."""
    from seqrec_lib.models.tokens import TokenLayout
    g = torch.Generator().manual_seed(5)
    items = torch.randint(0, 30, (12, 10), generator=g) * (torch.rand(12, 10, generator=g) > 0.3)
    used = TokenLayout.from_items(items)
    T = used.n_tokens
    calls = [lambda lay, x: lay.dropout(x, 0.3, True), lambda lay, x: lay.dropout(x.view(T, 2, -1), 0.3, True, True),
             lambda lay, x: lay.attention_dropout(x, 0.3, True)]
    inputs = [torch.randn(T, 8, generator=g), torch.randn(T, 8, generator=g),
              torch.rand(12, 2, used.width, used.width, generator=g)]
    for call, x in zip(calls, inputs):          # fill the cache, with other seeds
        call(used, x)
    for seed, (call, x) in enumerate(zip(calls, inputs)):
        torch.manual_seed(seed)
        cached = call(used, x)
        torch.manual_seed(seed)
        assert torch.equal(cached, call(TokenLayout.from_items(items), x))
