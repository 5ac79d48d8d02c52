"""MOJITO (docs/mojito.md): Mercer encoder, attention mixture vs a per-user reference, per-user semantics,
causality, padding, FISM vs a naive loop, scoring, loss, seeding, FISM sampling, faithful batch pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from seqrec_lib.batch import Batch
from seqrec_lib.data.sequences import SequenceData, SplitData, build_splits
from seqrec_lib.data.temporal import calendar_features
from seqrec_lib.models.attention_mixture import MixtureBlock
from seqrec_lib.models.mojito import Mojito, MojitoConfig
from seqrec_lib.models.time_context import MercerTimeEncoder

L = 6


def make_split(seed: int = 0, n_users: int = 6, n_items: int = 25, step: int = 3) -> SplitData:
    """Tiny random sequences with hourly-to-weekly gaps; user 1 is short (3 training items)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(7, 18, size=n_users)
    lengths[0] = 5
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate([rng.choice(np.arange(1, n_items + 1), size=n, replace=False) for n in lengths])
    gaps = rng.integers(3600, 7 * 86400, size=offsets[-1])
    ts = 1_500_000_000 + np.cumsum(gaps)
    data = SequenceData("synthetic", n_users, n_items, offsets, items.astype(np.int64), ts.astype(np.int64))
    return build_splits(data, max_len=L, samples_step=step)


def make_model(seed: int = 0, split: SplitData | None = None, **overrides) -> Mojito:
    torch.manual_seed(seed)
    kwargs = dict(d=8, n_heads=2, d_t=4, max_len=L, fism_items=6)
    kwargs.update(overrides)
    return Mojito.from_split(MojitoConfig(**kwargs), split if split is not None else make_split())


@pytest.fixture(scope="module")
def split() -> SplitData:
    return make_split()


def with_negatives(batch: Batch, n_items: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return batch.with_negatives(torch.randint(1, n_items + 1, (*batch.items.shape, 1), generator=g))


# ----- calendar features and the Mercer encoder (docs/data.md §7, docs/mojito.md §3) ------------------

def test_calendar_features_of_known_utc_timestamps() -> None:
    # 2001-09-09 01:46:40 UTC is a Sunday, day 252, ISO week 36; 2021-01-03 12:00 UTC is a Sunday in
    # ISO week 53 (of 2020), day 3. Year is relative to the earliest year (2001 → 1, 2021 → 21).
    feats = calendar_features(np.array([1_000_000_000, 1_609_675_200]))
    assert feats.tolist() == [[1, 9, 9, 7, 252, 36, 1], [21, 1, 3, 7, 3, 53, 12]]


def test_mercer_encoder_matches_direct_formula() -> None:
    torch.manual_seed(0)
    F_, d_t, K = 7, 4, 3
    enc = MercerTimeEncoder(F_, d_t, K, 8.0).double()
    assert torch.allclose(enc.log_period, torch.linspace(0, 8, d_t, dtype=torch.float64).repeat(F_, 1))
    assert (enc.bias == 0).all() and enc.basis.abs().max() <= math.sqrt(6 / (d_t + 2 * K))
    with torch.no_grad():                       # move off the initial values so every term is exercised
        enc.log_period.add_(0.3 * torch.randn_like(enc.log_period))
        enc.bias.normal_()
    t = torch.from_numpy(calendar_features(np.array([1_000_000_000, 1_609_675_200]))).double()   # [2, 7]
    every = enc(t.flatten())                                                                      # [14, F, d_t]
    assert every.shape == (2 * F_, F_, d_t)
    out = every.view(2, F_, F_, d_t).diagonal(dim1=1, dim2=2).transpose(1, 2)   # [2, F, d_t]: feature f's own encoder
    p, W, b = enc.log_period.tolist(), enc.basis.tolist(), enc.bias.tolist()
    for r in range(2):
        for f in range(F_):
            x = float(t[r, f])
            for i in range(d_t):
                want = b[f][i] + sum(W[f][i][k - 1] * math.sin(k * x * 10 ** -p[f][i])
                                     + W[f][i][K + k - 1] * math.cos(k * x * 10 ** -p[f][i]) for k in range(1, K + 1))
                assert out[r, f, i].item() == pytest.approx(want, abs=1e-10)


def test_six_features_drop_the_year(split: SplitData) -> None:
    model = make_model(split=split, n_time_features=6).eval()
    feats = split.valid.time_feats
    changed = feats.clone()
    changed[..., 0] += 5.0
    assert torch.equal(model.context(feats), model.context(changed))
    assert model.context.mercer.log_period.shape[0] == 6


# ----- the attention-mixture block (docs/mojito.md §5.1) -------------------------------------------------

def lin(layer: torch.nn.Linear, z: Tensor) -> Tensor:
    return z @ layer.weight.T + layer.bias


def reference_block(blk: MixtureBlock, x: Tensor, ctx: Tensor, m: Tensor, sigma: Tensor | None,
                    eps: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """docs/mojito.md §5.1 for one user at a time, one (head, query, key) at a time."""
    B, L_, D = x.shape
    H, d = blk.n_heads, blk.d_g
    dv = D // H
    ys, attns, heads = [], [], []
    for b in range(B):
        X, C, mb = x[b], ctx[b], m[b]
        Xn = F.layer_norm(X, (D,), blk.norm_x.weight, blk.norm_x.bias, eps=1e-6)
        Cn = F.layer_norm(C, (d,), blk.norm_c.weight, blk.norm_c.bias, eps=1e-6)
        G_it = lin(blk.q_it, Xn) @ lin(blk.k_it, X).T
        G_c = lin(blk.q_c, Cn) @ lin(blk.k_c, C).T
        if sigma is not None:
            G_it = G_it + sigma[0] ** 2 * eps[b, 0]
            G_c = G_c + sigma[1] ** 2 * eps[b, 1]
        A = torch.zeros(H, L_, L_, dtype=x.dtype)
        for q in range(L_):
            if not mb[q]:
                continue
            keys = [k for k in range(q + 1) if mb[k]]
            for h in range(H):
                logits = []
                for k in keys:
                    hidden = F.relu(blk.mix1.weight @ torch.stack([G_it[q, k], G_c[q, k]]) + blk.mix1.bias)
                    logits.append((blk.mix2.weight[h] @ hidden + blk.mix2.bias[h]) / math.sqrt(d))
                A[h, q, keys] = torch.softmax(torch.stack(logits), 0)
        V = lin(blk.value, X)
        O = torch.stack([A[h] @ V[:, h * dv:(h + 1) * dv] for h in range(H)])            # [H, L, dv]
        out = torch.cat(list(O), dim=-1) + Xn
        on = F.layer_norm(out, (D,), blk.norm_ffn.weight, blk.norm_ffn.bias, eps=1e-6)
        ys.append((lin(blk.ffn2, F.relu(lin(blk.ffn1, on))) + on) * mb[:, None])
        attns.append(A)
        heads.append(O)
    return torch.stack(ys), torch.stack(attns), torch.stack(heads)


def block_inputs(d: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    x = torch.randn(3, 5, 2 * d, generator=g, dtype=torch.float64) * m[..., None]
    ctx = torch.randn(3, 5, d, generator=g, dtype=torch.float64)        # the context stream is not masked
    return x, ctx, m


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("H", [1, 2, 4])
def test_block_matches_per_user_reference(H: int, noise: bool) -> None:
    torch.manual_seed(1)
    d = 8
    blk = MixtureBlock(d, H, dropout=0.0, ln_eps=1e-6).double().eval()
    with torch.no_grad():                       # move every weight, bias and LN parameter off its init
        for p in blk.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x, ctx, m = block_inputs(d)
    sigma = torch.tensor([0.7, 1.3], dtype=torch.float64) if noise else None
    torch.manual_seed(5)
    y, attn, heads = blk(x, ctx, m, sigma)
    torch.manual_seed(5)
    eps = torch.randn(3, 2, 5, 5, dtype=torch.float64)          # the block draws exactly this
    y_ref, attn_ref, heads_ref = reference_block(blk, x, ctx, m, sigma, eps)
    assert attn.shape == (3, H, 5, 5) and heads.shape == (3, H, 5, 2 * d // H)
    torch.testing.assert_close(attn, attn_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(heads, heads_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)


def test_noise_std_is_sigma_squared() -> None:
    torch.manual_seed(0)
    blk = MixtureBlock(8, 2, dropout=0.0, ln_eps=1e-6).double().eval()
    x, ctx, m = block_inputs(8)
    zero = blk(x, ctx, m, torch.zeros(2, dtype=torch.float64))
    none = blk(x, ctx, m, None)
    for a, b in zip(zero, none):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ----- the model: per-user semantics, causality, padding -------------------------------------------------

def assert_outputs_close(a, b, rows=slice(None), atol=1e-6) -> None:
    torch.testing.assert_close(a.states[rows], b.states[rows], rtol=0, atol=atol)
    for x, y in zip(a.attention + a.head_outputs, b.attention + b.head_outputs):
        torch.testing.assert_close(x[rows], y[rows], rtol=0, atol=atol)


def test_output_shapes_and_attention_rows(split: SplitData) -> None:
    for H in (1, 2, 4):
        model = make_model(split=split, n_heads=H).eval()
        batch = split.valid
        out = model(batch, return_attention=True)
        B = len(batch)
        assert out.states.shape == (B, L, 16)
        assert len(out.attention) == len(out.head_outputs) == 2
        m = batch.items > 0
        for A, O in zip(out.attention, out.head_outputs):
            assert A.shape == (B, H, L, L) and O.shape == (B, H, L, 16 // H)
            sums = A.sum(-1)                                              # [B, H, L]
            torch.testing.assert_close(sums, m[:, None].expand_as(sums).float())
            assert (A.triu(1) == 0).all()                                 # causal
            assert (A * (~m)[:, None, None, :] == 0).all()               # no weight on padded keys
    assert model(batch).attention == []


def test_permuting_the_batch_permutes_the_outputs(split: SplitData) -> None:
    model = make_model(split=split, attn_noise_at_eval=False).eval()
    batch = split.valid
    perm = torch.randperm(len(batch), generator=torch.Generator().manual_seed(0))
    out, out_p = model(batch, True), model(batch.select(perm), True)
    for a, b in zip([out.states] + out.attention + out.head_outputs,
                    [out_p.states] + out_p.attention + out_p.head_outputs):
        torch.testing.assert_close(a[perm], b, rtol=0, atol=1e-6)
    cands = torch.randint(1, split.n_items + 1, (len(batch), 9), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.score(out, batch)[perm], model.score(out_p, batch.select(perm)))
    torch.testing.assert_close(model.score(out, batch, cands)[perm],
                               model.score(out_p, batch.select(perm), cands[perm]))


def replace_user(batch: Batch, row: int, items: Tensor, feats: Tensor) -> Batch:
    new_items, new_feats = batch.items.clone(), batch.time_feats.clone()
    new_items[row], new_feats[row] = items, feats
    return Batch(batch.users, new_items, batch.targets, new_feats, batch.target_time_feats)


def test_no_cross_user_mixing_with_noise_on(split: SplitData) -> None:
    """With a fixed seed the noise is the same tensor, so changing one user changes no other user."""
    model = make_model(split=split).eval()
    batch = split.valid
    other = replace_user(batch, 1, batch.items[3], batch.time_feats[3])
    torch.manual_seed(0)
    a = model(batch, True)
    torch.manual_seed(0)
    b = model(other, True)
    keep = torch.tensor([0, 2, 3, 4, 5])
    assert_outputs_close(a, b, keep, atol=0)
    assert not torch.allclose(a.states[1], b.states[1])


@pytest.mark.parametrize("training", [False, True])
def test_causality(split: SplitData, training: bool) -> None:
    """A change to the item or timestamp at position t never changes positions < t (noise on, seeded)."""
    model = make_model(split=split).train(training)
    batch = split.test
    g = torch.Generator().manual_seed(0)
    for t in (2, 4, L - 1):
        items, feats = batch.items.clone(), batch.time_feats.clone()
        items[:, t] = torch.randint(1, split.n_items + 1, (len(batch),), generator=g)
        feats[:, t] = torch.randint(1, 12, feats[:, t].shape, generator=g).float()
        changed = Batch(batch.users, items, batch.targets, feats, batch.target_time_feats)
        torch.manual_seed(3)
        a = model(batch, True)
        torch.manual_seed(3)
        b = model(changed, True)
        torch.testing.assert_close(a.states[:, :t], b.states[:, :t], rtol=0, atol=1e-6)
        for x, y in zip(a.attention + a.head_outputs, b.attention + b.head_outputs):
            torch.testing.assert_close(x[:, :, :t], y[:, :, :t], rtol=0, atol=1e-6)
        assert not torch.allclose(a.states[:, t:], b.states[:, t:])


def test_padded_slots_change_nothing(split: SplitData) -> None:
    model = make_model(split=split).eval()
    batch = with_negatives(split.valid, split.n_items)
    pad = batch.items == 0
    assert pad.any()
    g = torch.Generator().manual_seed(0)
    feats, tfeats, negs = batch.time_feats.clone(), batch.target_time_feats.clone(), batch.negatives.clone()
    feats[pad] = torch.randint(1, 30, feats[pad].shape, generator=g).float()
    tfeats[batch.targets == 0] = 7.0
    negs[batch.targets == 0] = 1
    changed = Batch(batch.users, batch.items, batch.targets, feats, tfeats, negs)
    torch.manual_seed(0)
    a = model(batch, True)
    torch.manual_seed(0)
    b = model(changed, True)
    torch.testing.assert_close(a.states[~pad], b.states[~pad], rtol=0, atol=1e-6)
    for x, y in zip(a.attention + a.head_outputs, b.attention + b.head_outputs):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.score(a, batch), model.score(b, changed), rtol=0, atol=1e-5)
    torch.manual_seed(0)
    la = model.loss(batch)
    torch.manual_seed(0)
    lb = model.loss(changed)
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-6)


# ----- scoring, FISM, loss -----------------------------------------------------------------------------------

def naive_g(e: Tensor, user_row: Tensor, item_rows: Tensor, fism_ids: list[int], beta: float,
            mask_padding: bool) -> Tensor:
    rows = [user_row] + [item_rows[n] for n, f in enumerate(fism_ids) if f != 0 or not mask_padding]
    a = torch.softmax(torch.stack([r @ e for r in rows]), 0)
    z = sum(w * r for w, r in zip(a, rows))
    return (1 - beta) * e + beta * e * z


@pytest.mark.parametrize("mask_padding", [False, True])
def test_score_matches_naive_short_plus_fism(split: SplitData, mask_padding: bool) -> None:
    model = make_model(split=split, fism_mask_padding=mask_padding).eval()
    batch = split.test
    torch.manual_seed(0)
    out = model(batch)
    cands = torch.randint(1, split.n_items + 1, (len(batch), 7), generator=torch.Generator().manual_seed(2))
    got = model.score(out, batch, cands)
    E, U, c = model.item.weight, model.user.weight, model.config
    assert (model.fism[batch.users] == 0).any()                      # user 1 has fewer than N pool items
    for b in range(len(batch)):
        u = int(batch.users[b])
        f = model.fism[u].tolist()
        h = out.states[b, -1]
        tau = model.context(batch.target_time_feats[b, -1])
        g = lambda e: naive_g(e, U[u], E[model.fism[u]], f, c.lambda_trans_seq, mask_padding)
        seq_sum = sum(g(E[int(batch.items[b, l])]) for l in range(1, L))
        for j in range(cands.shape[1]):
            e = E[int(cands[b, j])]
            short = h @ torch.cat([e, tau])
            long_test = (g(e) + seq_sum) @ e / L
            assert got[b, j].item() == pytest.approx((short + c.lambda_long * long_test).item(), abs=1e-5)
            memory, valid = model.fism_memory(batch.users[b:b + 1])
            train_form = model.fism_self_score(e[None, None], memory, valid)[0, 0]
            assert train_form.item() == pytest.approx((g(e) @ e).item(), abs=1e-6)


def test_fism_mask_padding_ignores_padding_rows(split: SplitData) -> None:
    """User 1 has 3 pool items: with N = 6 or N = 10 its memory differs only by zero rows."""
    batch, user = split.test, 0
    cands = torch.arange(1, split.n_items + 1)[None].expand(len(batch), -1)
    scores = {}
    for mask in (False, True):
        for n in (6, 10):
            model = make_model(split=split, fism_items=n, fism_mask_padding=mask).eval()
            memory, valid = model.fism_memory(batch.users)
            scores[mask, n] = model.fism_self_score(model.item.weight[cands], memory, valid)[user]
    torch.testing.assert_close(scores[True, 6], scores[True, 10])
    assert not torch.allclose(scores[False, 6], scores[False, 10])


def test_candidates_equal_gather_from_full_catalogue(split: SplitData) -> None:
    model = make_model(split=split).eval()                # noise on: one forward, scored twice
    batch = split.test
    torch.manual_seed(0)
    out = model(batch)
    full = model.score(out, batch)
    assert full.shape == (len(batch), split.n_items + 1)
    cands = torch.randint(0, split.n_items + 1, (len(batch), 101), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.score(out, batch, cands), full.gather(1, cands), rtol=0, atol=1e-5)


def test_loss_matches_naive_formula(split: SplitData) -> None:
    model = make_model(split=split, attn_noise_at_eval=False).eval()
    batch = with_negatives(split.train, split.n_items)
    E, U, c = model.item.weight, model.user.weight, model.config
    h = model(batch).states
    short, long, n = 0.0, 0.0, 0
    for b in range(len(batch)):
        u = int(batch.users[b])
        f = model.fism[u].tolist()
        g = lambda e: naive_g(e, U[u], E[model.fism[u]], f, c.lambda_trans_seq, False)
        for l in range(L):
            pos, neg = int(batch.targets[b, l]), int(batch.negatives[b, l, 0])
            if pos == 0:
                continue
            tau = model.context(batch.target_time_feats[b, l])
            short -= F.logsigmoid(h[b, l] @ torch.cat([E[pos], tau])) + F.logsigmoid(-h[b, l] @ torch.cat([E[neg], tau]))
            long -= F.logsigmoid(g(E[pos]) @ E[pos]) + F.logsigmoid(-(g(E[neg]) @ E[neg]))
            n += 1
    want = short / n + c.lambda_long * long / n
    assert model.loss(batch).item() == pytest.approx(want.item(), abs=1e-5)


def test_loss_is_finite_and_backpropagates(split: SplitData) -> None:
    model = make_model(split=split).train()
    batch = with_negatives(split.train, split.n_items)
    loss = model.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert (model.item.weight.grad[0] == 0).all() and (model.user.weight.grad[0] == 0).all()
    for p in (model.sigma, model.user.weight, model.context.mercer.log_period, model.blocks[0].mix1.weight):
        assert p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="negatives"):
        model.loss(split.train)


def test_seeded_evaluation_noise(split: SplitData) -> None:
    model = make_model(split=split).eval()
    batch = split.test
    def scores(seed: int) -> Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return model.predict(batch)
    assert torch.equal(scores(3), scores(3))
    assert not torch.allclose(scores(3), scores(4))              # the noise is on at evaluation
    quiet = make_model(split=split, attn_noise_at_eval=False).eval()
    torch.manual_seed(3)
    a = quiet.predict(batch)
    torch.manual_seed(4)
    assert torch.equal(a, quiet.predict(batch))


def test_inputs_are_checked(split: SplitData) -> None:
    model = make_model(split=split)
    with pytest.raises(ValueError, match="time_feats"):
        model(Batch(split.valid.users, split.valid.items, split.valid.targets))
    with pytest.raises(ValueError, match="max_len"):
        Mojito.from_split(MojitoConfig(d=8, max_len=L + 1), split)
    with pytest.raises(ValueError, match="divisible"):
        MojitoConfig(d=8, n_heads=3)


# ----- FISM items (docs/mojito.md §7, M15) ---------------------------------------------------------------

def window_pool(split: SplitData) -> dict[int, set[int]]:
    pool: dict[int, set[int]] = {}
    for u, items, targets in zip(split.train.users.tolist(), split.train.items.tolist(), split.train.targets.tolist()):
        pool.setdefault(u, set()).update(v for v in items + targets if v)
    return pool


@pytest.mark.parametrize("source", ["windows", "history"])
def test_fism_items_are_a_sample_of_the_pool(split: SplitData, source: str) -> None:
    model = make_model(split=split, fism_pool=source)
    h = split.valid_history
    pool = window_pool(split) if source == "windows" else {
        u: set(h.items[int(h.offsets[u - 1]):int(h.offsets[u - 1] + h.lengths[u - 1])].tolist())
        for u in range(1, split.n_users + 1)}
    for epoch in range(3):
        model.start_epoch(epoch)
        for u in range(1, split.n_users + 1):
            row = model.fism[u].tolist()
            k = min(6, len(pool[u]))
            assert set(row[:k]) <= pool[u] and len(set(row[:k])) == k and row[k:] == [0] * (6 - k)


def test_windows_pool_leaves_out_gaps() -> None:
    split = make_split(step=9)           # windows of 6 with step 9 leave gaps
    w, h = make_model(split=split, fism_pool="windows"), make_model(split=split, fism_pool="history")
    assert len(w.pool_items) < len(h.pool_items)
    assert set(zip(w.pool_users.tolist(), w.pool_items.tolist())) == {
        (u, i) for u, items in window_pool(split).items() for i in items}


def test_fism_sampling_is_seeded_by_epoch(split: SplitData) -> None:
    a, b = make_model(seed=0, split=split, fism_seed=5), make_model(seed=1, split=split, fism_seed=5)
    tables = []
    for epoch in (0, 1, 0):
        a.start_epoch(epoch)
        b.start_epoch(epoch)
        assert torch.equal(a.fism, b.fism)                       # a fixed fism_seed: the init seed does not matter
        tables.append(a.fism.clone())
    assert torch.equal(tables[0], tables[2]) and not torch.equal(tables[0], tables[1])
    other = make_model(split=split, fism_seed=1)
    other.start_epoch(0)
    assert not torch.equal(other.fism, tables[0])
    assert "fism" in a.state_dict() and "pool_items" not in a.state_dict()


def test_fism_seed_follows_the_run_seed(split: SplitData) -> None:
    """fism_seed=None (default): each training seed draws its own FISM items, the same seed the same ones."""
    from seqrec_lib.train import TrainConfig, train_and_evaluate

    config = MojitoConfig(d=8, n_heads=2, d_t=4, max_len=L, fism_items=2)
    assert config.fism_seed is None
    tables = {}
    for seed in (1, 2, 1):
        model, record = train_and_evaluate("mojito", split, config, TrainConfig(epochs=1, batch_size=8, seed=seed,
                                                                               progress=False, select_metric="NDCG@10"))
        tables.setdefault(seed, []).append(model.fism.clone())
    assert torch.equal(tables[1][0], tables[1][1]) and not torch.equal(tables[1][0], tables[2][0])
    a, b = make_model(seed=3, split=split), make_model(seed=3, split=split)
    assert a.fism_seed == b.fism_seed != make_model(seed=4, split=split).fism_seed


def test_fism_sampling_is_uniform() -> None:
    split = make_split(step=1)
    model = make_model(split=split, fism_items=3)
    user = int(torch.argmax(torch.bincount(model.pool_users)))
    pool = model.pool_items[model.pool_users == user]
    counts = torch.zeros(split.n_items + 1)
    for epoch in range(300):
        model.start_epoch(epoch)
        counts[model.fism[user]] += 1
    expected = 300 * 3 / len(pool)
    assert ((counts[pool] - expected).abs() < 0.35 * expected).all()


# ----- the official code's batch pairing (docs/mojito.md §5.2) ---------------------------------------------

def test_faithful_batch_pairing_reproduces_the_official_mapping() -> None:
    torch.manual_seed(0)
    d, B = 8, 4
    blk = MixtureBlock(d, 2, dropout=0.0, ln_eps=1e-6, pairing=True).double().eval()
    g = torch.Generator().manual_seed(1)
    m = torch.ones(B, 5, dtype=torch.bool)
    m[0, :2] = m[3, :3] = False
    x = torch.randn(B, 5, 2 * d, generator=g, dtype=torch.float64) * m[..., None]
    ctx = torch.randn(B, 5, d, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.6, 1.1], dtype=torch.float64)
    torch.manual_seed(2)
    _, attn, _ = blk(x, ctx, m, sigma)
    torch.manual_seed(2)
    eps = torch.randn(2 * B, 5, 5, dtype=torch.float64)         # rows of the head-major [G_it; G_c]
    xn, cn = blk.norm_x(x), blk.norm_c(ctx)
    G = torch.cat([lin(blk.q_it, xn) @ lin(blk.k_it, x).transpose(1, 2),
                   lin(blk.q_c, cn) @ lin(blk.k_c, ctx).transpose(1, 2)])            # [2B, L, L]
    G = G + torch.tensor([0.6, 1.1] * B, dtype=torch.float64)[:, None, None] ** 2 * eps   # σ_it even, σ_c odd
    mix = lambda a, b: blk.mix2(F.relu(blk.mix1(torch.stack([a, b], -1))))          # [L, L, H]
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    for u in range(B):
        p = 2 * (u // 2)
        for head, offset in ((0, 0), (1, B)):                     # head 0: item logits, head 1: context logits
            s = mix(G[offset + p], G[offset + p + 1])[..., u % 2] / math.sqrt(d)
            s = s.masked_fill(~(causal & m[u][None, :]), torch.finfo(s.dtype).min)
            want = torch.softmax(s, -1) * m[u][:, None]
            torch.testing.assert_close(attn[u, head], want, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="even"):
        blk(x[:3], ctx[:3], m[:3], None)
    with pytest.raises(ValueError, match="n_heads=2"):
        MojitoConfig(n_heads=4, faithful_batch_pairing=True)


def test_faithful_batch_pairing_mixes_users(split: SplitData) -> None:
    model = make_model(split=split, faithful_batch_pairing=True, attn_noise_at_eval=False).eval()
    batch = split.valid
    other = replace_user(batch, 1, batch.items[3], batch.time_feats[3])
    a, b = model(batch), model(other)
    assert not torch.allclose(a.states[0, -1], b.states[0, -1])  # user 0 sees its neighbour 1
    torch.testing.assert_close(a.states[2:], b.states[2:])        # other pairs are untouched


# ----- ablation switches (issue 16) -----------------------------------------------------------------------------

def test_faithful_batch_pairing_takes_odd_batches(split: SplitData) -> None:
    """An odd batch (the last evaluation batch, 943 ML-100K users) pairs its last user with a copy of itself."""
    model = make_model(split=split, faithful_batch_pairing=True, attn_noise_at_eval=False).eval()
    batch = split.valid                                                   # 6 users
    odd = batch.select(torch.arange(5))
    out = model(odd, return_attention=True)
    assert out.states.shape[0] == 5 and all(a.shape[0] == 5 for a in out.attention)
    torch.testing.assert_close(out.states[:4], model(batch).states[:4])   # whole pairs are untouched
    twin = model(batch.select(torch.tensor([4, 4]))).states[0]
    torch.testing.assert_close(out.states[4], twin)
    assert model.predict(odd).shape == (5, split.n_items + 1)


def test_attn_noise_switch_removes_the_noise_in_training_and_evaluation(split: SplitData) -> None:
    batch = split.valid
    noisy = make_model(split=split, dropout=0.0, sigma_init=1.0).train()
    assert not torch.equal(noisy(batch).states, noisy(batch).states)     # σ²·ε drawn at every pass
    clean = make_model(split=split, dropout=0.0, sigma_init=1.0, attn_noise=False)
    for mode in (clean.train(), clean.eval()):
        torch.testing.assert_close(mode(batch).states, mode(batch).states, rtol=0, atol=0)
    loss = clean.train().loss(with_negatives(split.train, split.n_items))
    loss.backward()
    assert clean.sigma.grad is None                                       # σ takes no part


def test_time_context_switch_zeroes_the_context(split: SplitData) -> None:
    model = make_model(split=split, time_context=False).eval()
    batch = split.test
    assert torch.count_nonzero(model.context(batch.time_feats)) == 0
    shifted = Batch(batch.users, batch.items, batch.targets, batch.time_feats + 3.0, batch.target_time_feats + 5.0)
    torch.manual_seed(0)
    a = model.predict(batch)
    torch.manual_seed(0)
    torch.testing.assert_close(model.predict(shifted), a, rtol=0, atol=0)   # time no longer matters
    on = make_model(split=split).eval()
    torch.manual_seed(0)
    b = on.predict(batch)
    torch.manual_seed(0)
    assert not torch.allclose(on.predict(shifted), b)
