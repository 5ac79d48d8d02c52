"""ICLRec (docs/baselines.md §7): k-means against a naive loop (an empty cluster included), the intent and total
losses against a per-sample computation, CL4SRec / SASRec-CE when the terms are off, the trainer's per-epoch hook,
determinism and resuming, and learnability on the synthetic data."""

import dataclasses
import math

import pytest
import torch

from seqrec_lib.data import SyntheticConfig, build_splits, generate_synthetic
from seqrec_lib.models.base import SequentialModel
from seqrec_lib.models.cl4srec import CL4SRec, augment
from seqrec_lib.models.iclrec import ICLRec, ICLRecConfig, kmeans
from seqrec_lib.models.registry import build_model, make_config
from seqrec_lib.models.sasrec import SASRec, SASRecConfig
from seqrec_lib.train import TrainConfig, Trainer, seed_everything, torch_threads, train_and_evaluate
from tests.helpers import tiny_split


def naive_kmeans(x, k, iters, generator):
    """Lloyd's k-means point by point: the same start, nearest centroid (lowest index on ties), each empty cluster
    in turn takes the farthest point of a cluster with two or more points. Returns (centroids, assignment, refills)."""
    N = len(x)
    k = min(k, N)
    C = [x[i].clone() for i in torch.randperm(N, generator=generator)[:k]]

    def assign_all():
        assign, dist = [], []
        for n in range(N):
            d = [float(((x[n] - c) ** 2).sum()) for c in C]
            j = min(range(k), key=lambda j: (d[j], j))
            assign.append(j)
            dist.append(d[j])
        return assign, dist

    refills = 0
    for _ in range(iters):
        assign, dist = assign_all()
        for j in range(k):
            if assign.count(j) == 0:
                movable = [n for n in range(N) if assign.count(assign[n]) >= 2]
                i = max(movable, key=lambda n: (dist[n], -n))
                assign[i] = j
                refills += 1
        C = [sum(x[n] for n in range(N) if assign[n] == j) / assign.count(j) for j in range(k)]
    return torch.stack(C), assign_all()[0], refills


def test_kmeans_matches_a_naive_loop_including_empty_clusters():
    g = torch.Generator().manual_seed(0)
    # 10 scattered points and 8 copies of one point: a start with two copies leaves a cluster empty
    x = torch.cat([torch.randn(10, 3, generator=g, dtype=torch.float64) * 3,
                   torch.ones(8, 3, dtype=torch.float64)])
    refilled = 0
    for seed in range(6):
        centroids, assign, inertia = kmeans(x, 5, 6, torch.Generator().manual_seed(seed))
        C, A, refills = naive_kmeans(x, 5, 6, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(centroids, C)
        assert assign.tolist() == A
        torch.testing.assert_close(inertia, ((x - C[torch.tensor(A)]) ** 2).sum())
        assert (torch.bincount(assign, minlength=5) > 0).all()
        refilled += refills
    assert refilled > 0                                     # the empty-cluster branch ran
    few = kmeans(x[:3], 5, 2, torch.Generator().manual_seed(0))[0]
    assert few.shape == (3, 3)                             # k' = min(k, N): every point its own centroid
    torch.testing.assert_close(few[few[:, 0].argsort()], x[:3][x[:3, 0].argsort()])


def naive_nt_xent(a, b, tau, groups=None):
    """Mean over the 2B anchors v of −log(e^{s(v, v⁺)} / Σ_w e^{s(v, w)}), w ≠ v and, with ``groups``, w = v⁺ or
    w of another group."""
    B = len(a)
    v = list(a) + list(b)
    terms = []
    for i in range(2 * B):
        positive = (i + B) % (2 * B)
        kept = [w for w in range(2 * B) if w != i and (w == positive or groups is None
                                                       or groups[w % B] != groups[i % B])]
        denominator = sum(math.exp(float(v[i] @ v[w]) / tau) for w in kept)
        terms.append(-(float(v[i] @ v[positive]) / tau - math.log(denominator)))
    return sum(terms) / len(terms)


def make(split, **kw) -> ICLRec:
    torch.manual_seed(0)
    return ICLRec(ICLRecConfig(d=16, max_len=10, **kw), split.n_items)


@pytest.mark.parametrize("fnm,seq_repr,packed", [(False, "mean", True), (True, "mean", False), (True, "last", True)])
def test_total_and_intent_loss_match_a_per_sample_computation(fnm, seq_repr, packed):
    split = tiny_split(max_len=10)
    model = make(split, n_intents=4, cl_weight=0.4, intent_weight=0.7, temperature=0.8, fnm=fnm,
                 seq_repr=seq_repr).eval()
    model.packed = packed                       # False: the padded layout (off the CPU), padding states computed
    model.start_epoch(0, split)
    batch = split.train.select(torch.arange(12))
    torch.manual_seed(7)
    loss = model.loss(batch)

    torch.manual_seed(7)
    E, mu = model.item_embedding.detach(), model.centroids
    full = model(batch).states.detach()                                             # [B, L, d]

    def represent(states, items):
        rows = [states[b, -1] if seq_repr == "last" else states[b][items[b] > 0].mean(0) for b in range(len(items))]
        return torch.stack(rows)

    ce = [-torch.log_softmax(full[b, t] @ E[1:].T, 0)[batch.targets[b, t] - 1]
          for b in range(12) for t in range(10) if batch.targets[b, t] > 0]
    h = represent(full, batch.items)
    k = [min(range(len(mu)), key=lambda j: float(((h[b] - mu[j]) ** 2).sum())) for b in range(12)]
    prototypes = torch.stack([mu[j] / mu[j].norm() for j in k])
    views = []
    for _ in range(2):
        items = augment(batch.items, model.config, model.mask_id)
        states = model(dataclasses.replace(batch, items=items)).states.detach()
        views.append((states[:, -1], represent(states, items)))
    groups = k if fnm else None
    assert len(set(k)) < 12                                 # some sequences share an intent (FNM matters)
    instance = naive_nt_xent(views[0][0], views[1][0], 0.8)
    intent = sum(naive_nt_xent(view[1], prototypes, 0.8, groups) for view in views) / 2
    expected = float(torch.stack(ce).mean()) + 0.4 * instance + 0.7 * intent
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_terms_off_give_sasrec_ce_or_cl4srec_exactly():
    split = tiny_split(max_len=10)
    batch = split.train.select(torch.arange(16))
    model = make(split, cl_weight=0.0, intent_weight=0.0).train()                  # dropout on
    torch.manual_seed(3)
    loss = model.loss(batch)                                                        # no start_epoch needed
    torch.manual_seed(3)
    assert torch.equal(loss, SASRec.loss(model, batch))
    model.start_epoch(0, split)
    assert model.centroids is None                                                  # λ_ic = 0: no k-means
    # a warm-up epoch: CL4SRec's loss (eval: its views' last-query-only pass rounds alike)
    model = make(split, warm_up_epochs=2, n_intents=4).eval()
    with pytest.raises(RuntimeError, match="start_epoch"):
        model.loss(batch)
    model.start_epoch(1, split)
    torch.manual_seed(3)
    loss = model.loss(batch)
    torch.manual_seed(3)
    torch.testing.assert_close(loss, CL4SRec.loss(model, batch))
    model.start_epoch(2, split)
    assert model.centroids.shape == (4, 16)


def test_config_validation_and_registry():
    for bad in ({"intent_weight": -1.0}, {"n_intents": 0}, {"kmeans_iters": 0}, {"kmeans_restarts": 0},
                {"warm_up_epochs": -1}, {"seq_repr": "max"}, {"loss": "bce"}):
        with pytest.raises(ValueError):
            ICLRecConfig(**bad)
    c = ICLRecConfig()
    assert (c.cl_weight, c.intent_weight, c.temperature, c.n_intents, c.seq_repr, c.fnm, c.kmeans_iters,
            c.kmeans_restarts, c.warm_up_epochs) == (0.1, 0.3, 1.0, 256, "mean", False, 20, 5, 0)
    model = build_model("iclrec", tiny_split(max_len=10), make_config("iclrec", d=16, max_len=10))
    assert isinstance(model, ICLRec) and model.item_embedding.shape[0] == model.n_items + 1


class Spy(SASRec):
    def __init__(self, *args):
        super().__init__(*args)
        self.calls = []

    def start_epoch(self, epoch, split=None):
        self.calls.append((epoch, split is not None and split.n_items == self.n_items, self.training))


def test_trainer_calls_start_epoch_once_per_epoch_and_the_default_does_nothing(tmp_path):
    split = tiny_split(max_len=10)
    train = TrainConfig(epochs=3, patience=10, batch_size=16, device="cpu", progress=False)
    spy, resumed = (Spy(SASRecConfig(d=16, max_len=10), split.n_items) for _ in range(2))
    with torch_threads(1):
        Trainer(train).fit(spy, split)
        Trainer(dataclasses.replace(train, epochs=2)).fit(Spy(SASRecConfig(d=16, max_len=10), split.n_items), split,
                                                          tmp_path)
        Trainer(train).fit(resumed, split, tmp_path)
    assert spy.calls == [(0, True, True), (1, True, True), (2, True, True)]
    assert resumed.calls == [(2, True, True)]                                       # only the epoch it runs
    for name in ("sasrec", "cl4srec"):
        model = build_model(name, split, make_config(name, d=16, max_len=10)).train()
        assert type(model).start_epoch is SequentialModel.start_epoch
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        assert model.start_epoch(0, split) is None and model.training
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        assert torch.equal(rng, torch.get_rng_state())


def _fit(split, epochs, run_dir=None):
    seed_everything(0)
    model = build_model("iclrec", split, make_config("iclrec", d=16, max_len=10, n_intents=4, kmeans_restarts=2))
    with torch_threads(1):
        state = Trainer(TrainConfig(epochs=epochs, patience=10, batch_size=16, device="cpu", progress=False)).fit(
            model, split, run_dir)
    return model, [e["loss"] for e in state.log]


def test_iclrec_is_deterministic_and_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    split = tiny_split(max_len=10)
    a, losses_a = _fit(split, 3)
    b, losses_b = _fit(split, 3)
    _fit(split, 2, tmp_path)
    c, losses_c = _fit(split, 3, tmp_path)                 # resumes at epoch 3: intents from the restored weights
    assert losses_a == losses_b == losses_c                  # the resumed log holds the restored epochs too
    for other in (b, c):
        assert all(torch.equal(v, other.state_dict()[k]) for k, v in a.state_dict().items())
        torch.testing.assert_close(a.centroids, other.centroids, rtol=0, atol=0)
    a.start_epoch(5, split)
    first = a.centroids
    a.start_epoch(5, split)
    assert torch.equal(first, a.centroids) and a.training


@pytest.mark.slow
def test_iclrec_beats_most_popular_on_synthetic_data():
    """CL4SRec's test with K = 10 intents (the synthetic data has 10 genres) and 12 epochs instead of 20."""
    data, _ = generate_synthetic(SyntheticConfig(n_users=500, n_items=200, n_genres=10, n_creators=20, seed=3))
    split = build_splits(data, max_len=20)
    train = TrainConfig(epochs=12, patience=12, batch_size=64, lr=5e-3, device="cpu", progress=False, seed=0)
    with torch_threads(1):
        _, pop = train_and_evaluate("pop", split, None, train)
        config = ICLRecConfig(d=32, max_len=20, attn_dropout=0.2, hidden_dropout=0.2, n_intents=10)
        _, icl = train_and_evaluate("iclrec", split, config, train)
    p, c = pop["metrics"]["test"]["full"], icl["metrics"]["test"]["full"]
    assert c["NDCG@10"] > 1.3 * p["NDCG@10"], (c, p)
    assert c["HR@10"] > p["HR@10"] + 0.04, (c, p)
