import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from seqrec_lib.batch import Batch
from seqrec_lib.models.fame import Fame, FameConfig
from seqrec_lib.models.tokens import TokenLayout
from seqrec_lib.models.registry import build_model, make_config
from seqrec_lib.models.sasrec import SASRec
from tests.helpers import random_batch, tiny_split

N_ITEMS = 30


def make(seed: int = 0, n_items: int = N_ITEMS, **kw) -> Fame:
    torch.manual_seed(seed)
    kw = {"d": 32, "max_len": 8, "n_heads": 2, "n_experts": 3, **kw}
    return Fame(FameConfig(**kw), n_items).eval()


def pretrained_sasrec(config: FameConfig, seed: int = 1) -> SASRec:
    """A SASRec whose weights are far from any init (so copies can be told apart)."""
    torch.manual_seed(seed)
    model = SASRec(config.sasrec_config(), N_ITEMS)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def naive_mask(items: torch.Tensor) -> torch.Tensor:
    """[B, L] → [B, L, L] bool: query i may see key j iff j <= i and j is an item, or j == i."""
    B, L = items.shape
    m = torch.zeros(B, L, L, dtype=torch.bool)
    for b in range(B):
        for i in range(L):
            for j in range(L):
                m[b, i, j] = (j <= i and bool(items[b, j] > 0)) or i == j
    return m


def padded_states(model: Fame, items: torch.Tensor) -> tuple[torch.Tensor, TokenLayout]:
    """The lower blocks' states at every padded position [B, L, d] (and that layout: all B·L positions)."""
    layout = TokenLayout.from_items(items, packed=False)
    return model.encoder(items, layout).states.view(*items.shape, -1), layout


def padded_moe(moe, x: torch.Tensor, layout: TokenLayout, return_attention: bool = False):
    """MoEAttention on padded states [B, L, d] → f [B, H, L, d'], β [B, H, L, N], Ā [B, H, L, L] or None."""
    B, L, _ = x.shape
    f, beta, mixed = moe(x.reshape(B * L, -1), layout, return_attention)
    return (f.view(B, L, *f.shape[1:]).transpose(1, 2), beta.view(B, L, *beta.shape[1:]).transpose(1, 2), mixed)


def naive_fame(model: Fame, items: torch.Tensor) -> dict[str, torch.Tensor]:
    """FAME's last layer and prediction with explicit Python loops over heads and experts (eval mode)."""
    c, moe = model.config, model.moe
    H, N, e = c.n_heads, c.n_experts, c.d // c.n_heads
    x, _ = padded_states(model, items)                                           # [B, L, d]
    allowed = naive_mask(items)
    E = model.item_embedding
    heads, betas, mixed, facets = [], [], [], []
    for h in range(H):
        cols = slice(h * e, (h + 1) * e)
        k = x @ moe.key.weight[cols].T + moe.key.bias[cols]                     # [B, L, d']
        v = x @ moe.value.weight[cols].T + moe.value.bias[cols]
        outs, probs = [], []
        for n in range(N):
            q = x @ moe.experts[h, n]
            if moe.expert_bias is not None:
                q = q + moe.expert_bias[h, n]
            a = torch.softmax((q @ k.transpose(1, 2) / math.sqrt(e)).masked_fill(~allowed, -math.inf), -1)
            outs.append(a @ v)
            probs.append(a)
        beta = torch.softmax(torch.cat(outs, -1) @ moe.router[h], -1)          # [B, L, N]
        f = sum(beta[..., n:n + 1] * outs[n] for n in range(N))
        if c.attn_residual == "slice":
            norm = model.residual_norm
            f = F.layer_norm(x[..., cols] + f, (e,), norm.weight, norm.bias, norm.eps)
        ffn = model.head_ffn
        inner = torch.relu(f @ ffn.fc1.weight.T + ffn.fc1.bias) @ ffn.fc2.weight.T + ffn.fc2.bias
        heads.append(F.layer_norm(f + inner, (e,), ffn.norm.weight, ffn.norm.bias, ffn.norm.eps))
        betas.append(beta)
        mixed.append(sum(beta[..., n:n + 1] * probs[n] for n in range(N)))
        facets.append(E @ model.facets.weight[cols].T)                           # x_v^(h): [V, d']
    gate = torch.softmax(torch.cat(heads, -1) @ model.gate.weight.T + model.gate.bias, -1)   # [B, L, H]
    head_logits = torch.stack([heads[h] @ facets[h].T for h in range(H)], 2)   # [B, L, H, V]
    scores = sum(gate[..., h:h + 1] * head_logits[:, :, h] for h in range(H))  # [B, L, V]
    return {"gate": gate, "router": torch.stack(betas, 1), "mixed": torch.stack(mixed, 1),
            "head_states": torch.stack(heads, 2), "head_logits": head_logits, "scores": scores}


@pytest.mark.parametrize("H", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("N", [1, 2, 4, 8, 16, 32])
def test_shapes_and_distributions(H, N):
    model = make(n_heads=H, n_experts=N, n_blocks=2)
    batch = random_batch(n_items=N_ITEMS)
    out = model(batch, return_attention=True)
    B, L, d, e = 4, 8, 32, 32 // H
    assert out.states.shape == (B, L, d)
    assert out.extras["gate"].shape == (B, L, H)
    assert out.extras["router"].shape == (B, H, L, N)
    assert out.extras["head_states"].shape == (B, L, H, e)
    assert len(out.attention) == len(out.head_outputs) == 2
    for a, o in zip(out.attention, out.head_outputs):
        assert a.shape == (B, H, L, L) and o.shape == (B, H, L, e)
        torch.testing.assert_close(a.sum(-1), torch.ones(B, H, L))
        assert torch.all(a.triu(1) == 0), "attention to a future position"
    torch.testing.assert_close(out.extras["gate"].sum(-1), torch.ones(B, L))
    torch.testing.assert_close(out.extras["router"].sum(-1), torch.ones(B, H, L))
    torch.testing.assert_close(out.head_outputs[-1], out.extras["head_states"].transpose(1, 2))
    assert model.score(out, batch).shape == (B, N_ITEMS + 1)
    assert model.head_scores(out).shape == (B, H, N_ITEMS + 1)


@pytest.mark.parametrize("H,N,residual,bias,blocks", [(1, 1, "slice", False, 2), (2, 3, "slice", False, 2),
                                                      (4, 2, "none", True, 3), (8, 5, "slice", True, 1)])
def test_vectorised_model_equals_naive_loops(H, N, residual, bias, blocks):
    model = make(n_heads=H, n_experts=N, attn_residual=residual, expert_bias=bias, n_blocks=blocks)
    with torch.no_grad():  # non-trivial LayerNorms, gate bias and expert biases
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    batch = random_batch(n_items=N_ITEMS, seed=5)
    out = model(batch, return_attention=True)
    ref = naive_fame(model, batch.items)
    torch.testing.assert_close(out.extras["router"], ref["router"])
    torch.testing.assert_close(out.extras["head_states"], ref["head_states"])
    torch.testing.assert_close(out.extras["gate"], ref["gate"])
    torch.testing.assert_close(out.attention[-1], ref["mixed"])
    torch.testing.assert_close(out.states @ model.item_facets().T, ref["scores"])
    torch.testing.assert_close(model.score(out, batch), ref["scores"][:, -1])
    torch.testing.assert_close(model.head_scores(out), ref["head_logits"][:, -1])


def test_one_matmul_scores_equal_gated_per_head_sum():
    model = make(n_heads=4, n_experts=2)
    batch = random_batch(n_items=N_ITEMS, seed=2)
    out = model(batch)
    F_last, g = out.extras["head_states"][:, -1], out.extras["gate"][:, -1]    # [B, H, d'], [B, H]
    E, Wf, e = model.item_embedding, model.facets.weight.T, 32 // 4
    naive = torch.zeros(4, N_ITEMS + 1)
    for b in range(4):
        for h in range(4):
            x_h = E @ Wf[:, h * e:(h + 1) * e]                                   # [V, d']
            naive[b] += g[b, h] * (x_h @ F_last[b, h])
    torch.testing.assert_close(model.score(out, batch), naive)
    torch.testing.assert_close((g[..., None] * model.head_scores(out)).sum(1), naive)


@pytest.mark.parametrize("mixture", ["logit", "probability"])
def test_candidate_scores_equal_gathered_full_scores(mixture):
    model = make(mixture=mixture)
    batch = random_batch(n_items=N_ITEMS, seed=4)
    out = model(batch)
    candidates = torch.randint(1, N_ITEMS + 1, (4, 7))
    full = model.score(out, batch)
    torch.testing.assert_close(model.score(out, batch, candidates), full.gather(1, candidates))


def test_probability_mixture_scores_are_mixed_softmaxes():
    model = make(mixture="probability", n_heads=4)
    batch = random_batch(n_items=N_ITEMS, seed=4)
    out = model(batch)
    g, logits = out.extras["gate"][:, -1], model.head_scores(out)[..., 1:]     # [B, H], [B, H, n_items]
    expected = (g[..., None] * torch.softmax(logits, -1)).sum(1)
    scores = model.score(out, batch)
    assert torch.all(scores[:, 0] == 0)
    torch.testing.assert_close(scores[:, 1:], expected)


def test_n1_is_single_query_attention_with_the_pretrained_query():
    """N = 1: router ≡ 1, and the last layer is plain H-head attention with the pretrained W_Q, W_K, W_V;
    with expert biases it reproduces the SASRec last block's attention maps and head outputs exactly."""
    config = FameConfig(d=32, max_len=8, n_heads=4, n_experts=1, expert_bias=True)
    sasrec = pretrained_sasrec(config)
    torch.manual_seed(0)
    model = Fame(config, N_ITEMS).eval()
    model.load_pretrained(sasrec)
    batch = random_batch(n_items=N_ITEMS, seed=6)
    out = model(batch, return_attention=True)
    ref = sasrec(batch, return_attention=True)
    assert torch.all(out.extras["router"] == 1)
    torch.testing.assert_close(out.attention[-1], ref.attention[-1])
    for a, b in zip(out.attention[:-1] + out.head_outputs[:-1], ref.attention[:-1] + ref.head_outputs[:-1]):
        torch.testing.assert_close(a, b)
    f, _, _ = padded_moe(model.moe, *padded_states(model, batch.items))
    torch.testing.assert_close(f, ref.head_outputs[-1])

    # without expert biases: the pretrained W_Q alone, hand-built
    nobias = Fame(dataclasses.replace(config, expert_bias=False), N_ITEMS).eval()
    nobias.load_pretrained(sasrec)
    x, layout = padded_states(nobias, batch.items)
    att = sasrec.encoder.blocks[-1].attention
    split = att.split_heads
    q, k, v = split(x @ att.query.weight.T), split(att.key(x)), split(att.value(x))
    probs = torch.softmax((q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~naive_mask(batch.items)[:, None],
                                                                             -math.inf), -1)
    f, beta, mixed = padded_moe(nobias.moe, x, layout, return_attention=True)
    assert torch.all(beta == 1)
    torch.testing.assert_close(mixed, probs)
    torch.testing.assert_close(f, probs @ v)


@pytest.mark.parametrize("N,expert_init", [(1, "random"), (3, "random"), (3, "pretrained_noise")])
def test_load_pretrained_copies_exactly_the_kept_weights(N, expert_init):
    config = FameConfig(d=32, max_len=8, n_heads=4, n_blocks=3, n_experts=N, expert_init=expert_init,
                        expert_bias=True)
    sasrec = pretrained_sasrec(config)
    ckpt = {k: v.clone() for k, v in sasrec.state_dict().items()}
    torch.manual_seed(0)
    model = Fame(config, N_ITEMS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_pretrained(ckpt)
    after = model.state_dict()
    copied = {k: k for k in ckpt if not k.startswith("encoder.blocks.2.")}   # embedding + blocks 1, 2
    copied |= {f"moe.{n}.{p}": f"encoder.blocks.2.attention.{n}.{p}" for n in ("key", "value")
               for p in ("weight", "bias")}
    assert len(copied) == 4 + 2 * 16 + 4
    for ours, theirs in copied.items():
        assert torch.equal(after[ours], ckpt[theirs]), ours
    wq = ckpt["encoder.blocks.2.attention.query.weight"].T.reshape(32, 4, 8).permute(1, 0, 2)   # [H, d, d']
    bq = ckpt["encoder.blocks.2.attention.query.bias"].view(4, 8)
    query_copied = N == 1 or expert_init == "pretrained_noise"
    new = set(after) - set(copied) - ({"moe.experts", "moe.expert_bias"} if query_copied else set())
    assert {"moe.router", "gate.weight", "gate.bias", "facets.weight", "head_ffn.fc1.weight"} <= new
    for k in new:
        assert torch.equal(after[k], before[k]), f"{k} was overwritten"
        assert not any(v.shape == after[k].shape and torch.equal(v, after[k]) for v in ckpt.values()), \
            f"{k} is a copy of a pretrained weight"
    experts, bias = after["moe.experts"], after["moe.expert_bias"]
    if N == 1:
        assert torch.equal(experts[:, 0], wq) and torch.equal(bias[:, 0], bq)
    elif expert_init == "pretrained_noise":
        noise = experts - wq[:, None]
        assert 0.005 < noise.std() < 0.02 and not torch.equal(experts[:, 0], experts[:, 1])
        assert torch.equal(bias, bq[:, None].expand_as(bias))
    else:
        assert torch.equal(experts, before["moe.experts"]) and not torch.allclose(experts[:, 0], wq)


def test_load_pretrained_rejects_a_different_backbone():
    config = FameConfig(d=32, max_len=8, n_heads=4)
    with pytest.raises(ValueError, match="n_heads"):
        make(n_heads=2).load_pretrained(pretrained_sasrec(config))
    with pytest.raises(KeyError, match="n_blocks=3"):
        make(n_heads=4, n_blocks=3).load_pretrained(pretrained_sasrec(config).state_dict())
    with pytest.raises(RuntimeError):
        make(n_heads=4, n_blocks=1).load_pretrained(pretrained_sasrec(config).state_dict())


def test_block_selector_facets_are_slices_of_the_item_embedding():
    model = make(wf_init="block_selector", n_heads=4)
    torch.testing.assert_close(model.item_facets(), model.item_embedding)


def test_causality_future_items_change_nothing_earlier():
    model = make(n_heads=4, n_experts=3)
    items = torch.randint(1, N_ITEMS + 1, (2, 8))
    items[0, :2] = 0
    changed = items.clone()
    changed[:, 5:] = torch.randint(1, N_ITEMS + 1, (2, 3))
    a, b = model(Batch(torch.arange(2), items, items)), model(Batch(torch.arange(2), changed, changed))
    torch.testing.assert_close(a.states[:, :5], b.states[:, :5])
    for key, past in (("gate", (slice(None), slice(0, 5))), ("head_states", (slice(None), slice(0, 5))),
                      ("router", (slice(None), slice(None), slice(0, 5)))):
        torch.testing.assert_close(a.extras[key][past], b.extras[key][past])
    assert not torch.allclose(a.states[:, 5:], b.states[:, 5:])


def test_padding_does_not_change_the_last_position():
    model = make(n_heads=4, n_experts=3)
    padded, bare = torch.tensor([[0, 0, 0, 0, 0, 7, 8, 9]]), torch.tensor([[7, 8, 9]])
    a, b = model(Batch(torch.tensor([1]), padded, padded)), model(Batch(torch.tensor([1]), bare, bare))
    torch.testing.assert_close(a.states[:, -1], b.states[:, -1])
    for key in ("gate", "head_states"):
        torch.testing.assert_close(a.extras[key][:, -1], b.extras[key][:, -1])
    torch.testing.assert_close(a.extras["router"][:, :, -1], b.extras["router"][:, :, -1])


@pytest.mark.parametrize("positions", ["all", "last"])
def test_loss_equals_naive_cross_entropy(positions):
    model = make(n_heads=4, n_experts=2, loss_positions=positions)
    batch = random_batch(n_items=N_ITEMS, seed=7)
    scores = naive_fame(model, batch.items)["scores"]                          # [B, L, V]
    terms = []
    for b in range(4):
        for t in range(8):
            target = int(batch.targets[b, t])
            if target > 0 and (positions == "all" or t == 7):
                logits = scores[b, t, 1:]
                terms.append(torch.logsumexp(logits, 0) - logits[target - 1])
    torch.testing.assert_close(model.loss(batch), torch.stack(terms).mean())


def test_probability_mixture_loss_equals_naive_form():
    model = make(n_heads=4, n_experts=2, mixture="probability")
    batch = random_batch(n_items=N_ITEMS, seed=8)
    ref = naive_fame(model, batch.items)
    terms = []
    for b in range(4):
        for t in range(8):
            target = int(batch.targets[b, t])
            if target > 0:
                p = sum(ref["gate"][b, t, h] * torch.softmax(ref["head_logits"][b, t, h, 1:], 0)[target - 1]
                        for h in range(4))
                terms.append(-torch.log(p))
    torch.testing.assert_close(model.loss(batch), torch.stack(terms).mean())


def test_training_step_reaches_every_parameter():
    model = make(n_heads=2, n_experts=3, expert_bias=True).train()
    model.loss(random_batch(n_items=N_ITEMS, seed=9)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_registry_and_config():
    split = tiny_split()
    config = make_config("fame", d=16, n_heads=2, n_experts=2, max_len=10)
    model = build_model("fame", split, config)
    assert isinstance(model, Fame) and model.n_items == split.n_items
    assert config.sasrec_config().n_heads == 2 and config.sasrec_config().loss == "ce"
    for bad in ({"n_experts": 0}, {"mixture": "max"}, {"attn_residual": "full"}, {"d": 30, "n_heads": 4}):
        with pytest.raises(ValueError):
            FameConfig(**bad)
