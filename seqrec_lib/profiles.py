"""Experiment profiles: which datasets, grids, seeds and training budgets a run of the notebooks uses.

- ``smoke``: seconds on a CPU: a quick look at every notebook, and the tests (tiny synthetic data, 2 epochs, the
  smallest grids).
- ``demo`` (the default): a fast offline check that the pipeline runs end to end (synthetic data only,
  reduced grids, short budgets; its numbers do not test the papers' claims); the whole ``./run_all.sh``
  takes about 4-5 minutes on a 2-core CPU (4 min 25 s measured on 2026-12-04, longer on a busy machine).
- ``paper``: the papers' settings (docs/protocol.md §4, §6; docs/papers.md §4): Beauty, Sports and Toys with
  H ∈ {1, 2, 4, 8, 16}, N ∈ {2, 4, 8, 16, 32}, 3 seeds, 300 epochs with patience 40; the MOJITO table (MOJITO,
  SASRec-BCE, SASRec-CE and MOJITO's ablations, one rule for every row) on ML-100K (the only real dataset with
  timestamps available offline). A GPU is recommended.

Every other module reads its settings from a ``Profile``; nothing else hard-codes a grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .data.registry import get_spec
from .data.synthetic import SyntheticConfig
from .train import TrainConfig

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Profile:
    """One experiment setting.

    - ``fame_datasets``: datasets of the SASRec/FAME experiments (head and expert sweeps, Table 2 rows).
    - ``time_datasets``: datasets of the MOJITO table (they need timestamps): MOJITO, SASRec-BCE, SASRec-CE
      (``experiments.time_specs``), and MOJITO's ablations when ``mojito_ablations``.
    - ``heads`` / ``experts``: the grids of Fig. 5 (H) and Fig. 6 (N); ``seeds``: the seeds of the final
      table rows (the sweeps use ``seeds[0]``).
    - ``train``: SASRec-CE and FAME training (both stages); ``mojito_train``: every row of the MOJITO table.
    - ``d``, ``max_len``, ``dropout``: backbone width, sequence length, SASRec/FAME dropout (attention and
      hidden); ``mojito_samples_step``: the training windows of every row of the MOJITO table (None: one
      all-positions sample per user); ``mojito_dropout``: the dropout of every row of the MOJITO table.
    - ``synthetic``: the generator's config wherever a dataset is ``"synthetic"``.
    - ``case_study``: (dataset, user) of Fig. 7, at ``case_study_heads`` heads.
    - ``single_heads`` / ``single_experts``: H and N of the single trainings (``01_train``).
    - ``mojito_cohort_size``: users per cohort of the sampled protocol (None: all users).
    - ``data_dir``: raw data folder (None: ``$SEQREC_DATA_DIR``, then the checkout's ``data/``); ``device``: "auto",
      "cpu", "cuda", ...
    - ``cpu_threads``: torch threads while a run trains on the CPU (None: torch's default). Small models
      run several times faster on one thread, and one thread cannot be slowed down by a busy machine.
    - ``run_cpus`` / ``run_gpus``: what each run of a sweep reserves under the ``ray`` executor
      (``experiments.run_many``): CPUs, and GPUs (a fraction below 1 shares a GPU, e.g. 0.25: four runs
      per GPU; ignored where the cluster has no GPU).
    - ``baselines``: models trained beside SASRec-CE and FAME for the Table-2 rows, one seed each, by the
      Table-2 rule (``experiments.baseline_specs``); ``time_baselines``: models added to the MOJITO table by
      its rule (docs/baselines.md §5).
    - ``train_overrides``: model name → ``TrainConfig`` fields that model trains with instead, in either
      table (BERT4Rec's longer training, docs/baselines.md §2).
    - ``mojito_ablations``: the MOJITO table also has MOJITO's ablations (``experiments.MOJITO_ABLATIONS``).
    - ``fame_wf_init`` / ``fame_attn_residual``: FAME's W_f initialisation and last-layer residual (docs/fame.md
      A5-A6), chosen on validation once (issue 12 step 3) and frozen here for every FAME run of the profile.
    - ``train_missing``: notebooks train the runs that have no finished record (smoke, demo); False (paper): they
      read the finished and committed records and shipped weights and leave the rest out, saying what is missing
      and how to train it (``experiments.to_run``), so a fresh clone re-draws the published results.
    - ``more_case_studies``: (dataset, user) pairs ``run_all.sh`` draws with notebook 05 besides ``case_study``.
    - ``fame_overrides``: ``attn_dropout`` / ``hidden_dropout`` (over ``dropout``) and ``TrainConfig`` fields (over
      ``train``) for SASRec-CE and FAME only: the setting their search chose on validation (issue 12 step 1). The
      Table-2 baselines keep ``dropout`` and ``train``, so they neither move with the search nor lose their runs.
    """

    name: str
    description: str
    fame_datasets: tuple[str, ...]
    time_datasets: tuple[str, ...]
    heads: tuple[int, ...]
    experts: tuple[int, ...]
    seeds: tuple[int, ...]
    train: TrainConfig
    mojito_train: TrainConfig
    d: int
    max_len: int
    dropout: float
    mojito_samples_step: int | None
    mojito_dropout: float
    synthetic: SyntheticConfig | None
    case_study: tuple[str, int]
    case_study_heads: int
    data_dir: str | None = None
    device: str = "auto"
    single_heads: int = 2
    single_experts: int = 4
    mojito_cohort_size: int | None = None
    cpu_threads: int | None = None
    run_cpus: float = 1.0
    run_gpus: float = 0.0
    baselines: tuple[str, ...] = ()
    time_baselines: tuple[str, ...] = ()
    train_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    mojito_ablations: bool = False
    fame_wf_init: str = "random"
    fame_attn_residual: str = "slice"
    fame_overrides: Mapping[str, Any] = field(default_factory=dict, hash=False)
    train_missing: bool = True
    more_case_studies: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name in ("fame_datasets", "time_datasets", "heads", "experts", "seeds"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value:
                raise ValueError(f"Profile {self.name!r}: {name} must be a non-empty tuple, got {value!r}")
            if len(set(value)) != len(value):
                raise ValueError(f"Profile {self.name!r}: {name} has duplicates: {value!r}")
        for dataset in self.datasets + (self.case_study[0],):
            get_spec(dataset)  # raises ValueError naming the known datasets
        if SYNTHETIC in self.datasets + (self.case_study[0],) and self.synthetic is None:
            raise ValueError(f"Profile {self.name!r} uses the 'synthetic' dataset, so synthetic must be a "
                             f"SyntheticConfig, not None")
        for heads in self.heads + (self.case_study_heads, self.single_heads):
            if heads < 1 or self.d % heads:
                raise ValueError(f"Profile {self.name!r}: every head count must divide d={self.d}, got {heads}")
        if any(n < 1 for n in self.experts + (self.single_experts,)):
            raise ValueError(f"Profile {self.name!r}: expert counts must be positive, got {self.experts}")
        if self.max_len < 1:
            raise ValueError(f"Profile {self.name!r}: max_len must be positive, got {self.max_len}")
        for name in ("dropout", "mojito_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"Profile {self.name!r}: {name} must lie in [0, 1), got {getattr(self, name)}")
        if self.mojito_samples_step is not None and self.mojito_samples_step < 1:
            raise ValueError(f"Profile {self.name!r}: mojito_samples_step must be None or positive, "
                             f"got {self.mojito_samples_step}")
        if self.mojito_cohort_size is not None and self.mojito_cohort_size < 1:
            raise ValueError(f"Profile {self.name!r}: mojito_cohort_size must be None or positive, "
                             f"got {self.mojito_cohort_size}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"Profile {self.name!r}: cpu_threads must be None or positive, got {self.cpu_threads}")
        if self.run_cpus <= 0:
            raise ValueError(f"Profile {self.name!r}: run_cpus must be positive, got {self.run_cpus}")
        if self.run_gpus < 0 or (self.run_gpus > 1 and self.run_gpus != int(self.run_gpus)):
            raise ValueError(f"Profile {self.name!r}: run_gpus must be a fraction in [0, 1] or a whole number, "
                             f"got {self.run_gpus}")
        self._check_baselines()
        for dataset, user in self.case_studies:
            get_spec(dataset)
            if user < 1:
                raise ValueError(f"Profile {self.name!r}: a case-study user must be a 1-based id, got {user} "
                                 f"on {dataset}")

    def _check_baselines(self) -> None:
        from .models.registry import MODELS

        train_fields = set(TrainConfig.__dataclass_fields__)
        for name in ("baselines", "time_baselines"):
            unknown = [m for m in getattr(self, name) if m not in MODELS]
            if not isinstance(getattr(self, name), tuple) or unknown:
                raise ValueError(f"Profile {self.name!r}: {name} must be a tuple of registered models, "
                                 f"unknown: {unknown}; known: {sorted(MODELS)}")
        bad = sorted(set(self.fame_overrides) - train_fields - {"attn_dropout", "hidden_dropout"})
        if bad:
            raise ValueError(f"Profile {self.name!r}: fame_overrides takes attn_dropout, hidden_dropout and "
                             f"TrainConfig fields; unknown: {bad}")
        for model, overrides in self.train_overrides.items():
            bad = sorted(set(overrides) - train_fields)
            if model not in MODELS or bad:
                raise ValueError(f"Profile {self.name!r}: train_overrides[{model!r}] must name a registered "
                                 f"model and TrainConfig fields; unknown fields: {bad}")

    @property
    def fame_train(self) -> TrainConfig:
        """SASRec-CE and FAME training: ``train`` with the ``fame_overrides`` that are TrainConfig fields."""
        fields = {k: v for k, v in self.fame_overrides.items() if k in TrainConfig.__dataclass_fields__}
        return dataclasses.replace(self.train, **fields) if fields else self.train

    def fame_dropout(self, kind: str) -> float:
        """SASRec-CE and FAME's ``kind`` ("attn_dropout" / "hidden_dropout"): ``fame_overrides``, else ``dropout``."""
        return self.fame_overrides.get(kind, self.dropout)

    def train_for(self, model: str, base: TrainConfig) -> TrainConfig:
        """``base`` with the profile's ``train_overrides`` for ``model`` applied."""
        overrides = self.train_overrides.get(model, {})
        return dataclasses.replace(base, **overrides) if overrides else base

    def fame_subset(self, datasets: str) -> tuple[str, ...]:
        """The FAME datasets a notebook's ``datasets`` parameter names: comma-separated names, each one of
        ``fame_datasets``; "" means all of them (in the profile's order)."""
        names = tuple(dict.fromkeys(d.strip() for d in datasets.split(",") if d.strip()))
        unknown = [d for d in names if d not in self.fame_datasets]
        if unknown:
            raise ValueError(f"datasets={datasets!r}: {unknown} not in profile {self.name!r}'s FAME datasets "
                             f"{list(self.fame_datasets)} (comma-separated names, or \"\" for all)")
        return names or self.fame_datasets

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset the profile trains on, FAME's first, without duplicates."""
        return tuple(dict.fromkeys(self.fame_datasets + self.time_datasets))

    @property
    def case_studies(self) -> tuple[tuple[str, int], ...]:
        """``case_study`` first, then ``more_case_studies``: the (dataset, user) pairs notebook 05 draws."""
        return (self.case_study,) + self.more_case_studies

    @property
    def offline(self) -> bool:
        """True when every dataset is generated (nothing to download)."""
        return all(get_spec(name).interactions is None for name in self.datasets + (self.case_study[0],))


_SMOKE_TRAIN = TrainConfig(epochs=2, patience=2, batch_size=32, lr=3e-3, progress=False)

# Demo budgets, measured on a busy 2-core CPU (one torch thread): a SASRec/FAME run 15-30 s, MOJITO about
# 60 s (its epochs cost 3x SASRec's and it starts slowly, so no early stopping), SASRec-BCE about 15 s.
_DEMO_TRAIN = TrainConfig(epochs=20, patience=4, batch_size=64, lr=3e-3)
_DEMO_MOJITO_TRAIN = TrainConfig(epochs=12, patience=12, batch_size=64, lr=3e-3, select_metric="NDCG@10")

# docs/protocol.md §4: Adam 1e-3, batch 256, at most 300 epochs, early stopping on validation NDCG@20, patience 40.
_PAPER_TRAIN = TrainConfig(epochs=300, patience=40, batch_size=256, lr=1e-3, select_metric="NDCG@20")
# docs/protocol.md §4, the MOJITO table on ML-100K (issue 16), the same for every row: windows every 10 items
# (mojito_samples_step below: 7,029 windows), batch 128 (SASRec's official batch) = 55 Adam steps per epoch, at
# most 200 epochs (11k steps), early stopping after 20 epochs (1,100 steps) without a better validation NDCG@10
# (sampled), so a run stops only once its validation has peaked. MOJITO's own ML-1M budget (batch 512, 100
# epochs, no early stopping, windows every 100) gives ML-100K 4 steps per epoch, 400 in all: the official runs'
# best epochs were their last ones, and so were ours (benchmarks/results/ml100k_mojito_cpu.json).
_PAPER_MOJITO_TRAIN = TrainConfig(epochs=200, patience=20, batch_size=128, lr=1e-3, select_metric="NDCG@10")

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="a quick look in seconds (and the tests): a tiny synthetic world, 2 epochs, the smallest grids",
        fame_datasets=(SYNTHETIC,),
        time_datasets=(SYNTHETIC,),
        heads=(1, 2),
        experts=(2,),
        seeds=(0,),
        train=_SMOKE_TRAIN,
        mojito_train=TrainConfig(epochs=2, patience=2, batch_size=32, lr=3e-3, select_metric="NDCG@10",
                                 progress=False),
        d=16,
        max_len=12,
        dropout=0.2,
        mojito_samples_step=3,
        mojito_dropout=0.2,
        synthetic=SyntheticConfig.smoke(),
        case_study=(SYNTHETIC, 1),
        case_study_heads=2,
        single_heads=2,
        single_experts=2,
        cpu_threads=1,
        baselines=("gru4rec", "bert4rec", "cl4srec"),
        time_baselines=("tisasrec",),
    ),
    "demo": Profile(
        name="demo",
        description="offline demo, a fast check that the pipeline runs: synthetic data (1,000 users, 500 items, "
                    "planted facets and time effects), H in {1, 2, 4}, N in {2, 4, 8}, one seed, at most 20 "
                    "epochs; its numbers do not test the papers' claims (real data: profile 'paper', published "
                    "in outputs/paper/); ./run_all.sh in about 5 minutes on a 2-core CPU",
        fame_datasets=(SYNTHETIC,),
        time_datasets=(SYNTHETIC,),
        heads=(1, 2, 4),
        experts=(2, 4, 8),
        seeds=(0,),
        train=_DEMO_TRAIN,
        mojito_train=_DEMO_MOJITO_TRAIN,
        d=32,
        max_len=30,
        dropout=0.2,
        mojito_samples_step=5,
        mojito_dropout=0.2,
        synthetic=SyntheticConfig(),
        case_study=(SYNTHETIC, 1),
        case_study_heads=2,
        single_heads=2,
        single_experts=4,
        mojito_cohort_size=500,    # 5 cohorts of 500 of the 1,000 users: halves MOJITO's per-epoch validation
        cpu_threads=1,
        baselines=("gru4rec", "bert4rec", "cl4srec"),   # short budgets: BERT4Rec under-trained
        time_baselines=("tisasrec",),
        # the demo's time limit (about +1 minute for the three): GRU4Rec 10 epochs at lr 1e-2, CL4SRec 8
        train_overrides={"gru4rec": {"epochs": 10, "lr": 1e-2}, "cl4srec": {"epochs": 8}},
    ),
    "paper": Profile(
        name="paper",
        description="the papers' settings: Beauty, Sports, Toys; H in {1,2,4,8,16}, N in {2,4,8,16,32}, "
                    "seeds 1-3, d=64, dropout 0.5, 300 epochs with patience 40 (docs/protocol.md §6); the MOJITO "
                    "table on ML-100K: MOJITO, SASRec-BCE, SASRec-CE and MOJITO's ablations on the same windows, "
                    "budget and Adam betas (docs/protocol.md §3-4); GPU recommended",
        fame_datasets=("beauty", "toys", "sports"),
        time_datasets=("ml-100k",),
        heads=(1, 2, 4, 8, 16),
        experts=(2, 4, 8, 16, 32),
        seeds=(1, 2, 3),
        train=_PAPER_TRAIN,
        mojito_train=_PAPER_MOJITO_TRAIN,
        d=64,
        max_len=50,
        dropout=0.5,
        mojito_samples_step=10,    # every transition a target, each seen in ~5 windows (docs/data.md §8; ML-1M: 100)
        mojito_dropout=0.3,        # ML-1M's official config (docs/mojito.md §2)
        synthetic=None,
        case_study=("beauty", 230),     # the paper's user id, fixed before looking; on Sports too (below)
        more_case_studies=(("sports", 230),),
        case_study_heads=2,
        single_heads=2,
        single_experts=4,
        train_missing=False,       # notebooks read the committed runs; scripts/paper_runs.py trains what is missing
        mojito_cohort_size=None,   # ML-100K has 943 users (< MOJITO's 5,000): every user in each cohort
        run_gpus=0.25,             # with --executor ray: four small runs share each GPU
        # Table 2's baseline columns (docs/baselines.md §5): Beauty seeds 1-3, Toys and Sports seed 1
        baselines=("gru4rec", "bert4rec", "cl4srec", "iclrec", "duorec", "core"),
        time_baselines=("tisasrec", "gru4rec", "bert4rec"),   # the MOJITO table on ML-100K
        # Petrov & Macdonald: BERT4Rec needs long training; early stopping after 200 epochs (docs/baselines.md §2)
        train_overrides={"bert4rec": {"epochs": 2000, "patience": 200}},
        mojito_ablations=True,
        # issue 12 step 1: SASRec-CE's search on Beauty (6 settings, seed 1) chose this on validation NDCG@20
        # (0.0809; the paper's setting 0.0804; outputs/paper/results/table2_so_far.md); SASRec-CE and FAME only
        fame_overrides={"attn_dropout": 0.5, "hidden_dropout": 0.5, "lr": 5e-4, "batch_size": 512},
        # issue 12 step 3: FAME w/o MoE (H = 2, Beauty, seed 1) chose these on validation NDCG@20 (0.0821; the other
        # three 0.0805-0.0818)
        fame_wf_init="block_selector",
        fame_attn_residual="slice",
    ),
}

DEFAULT_PROFILE = "demo"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
