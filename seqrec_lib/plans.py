"""The paper's plans: which runs of the ``paper`` profile each study needs, in the order they run, and where their
records are committed. A plan's units may follow from validation choices an earlier plan made (``NotReady`` until
they are made). ``scripts/paper_runs.py`` trains them, ``scripts/publish_paper.py`` publishes what finished."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .experiments import (SELECTION_METRIC, RunSpec, baseline_specs, best_experts, best_heads, expert_sweep_specs,
                          fame_spec, head_sweep_specs, published_record, run_dir, sasrec_ce_spec, single_run_spec,
                          table_specs, time_specs, with_overrides)
from .profiles import Profile

ROOT = Path(__file__).resolve().parents[1]
"""The repository (its committed results are under ``outputs/``)."""
PAPER = ROOT / "outputs" / "paper"

# Issue 12 step 1: the paper's SASRec-CE setting (docs: dropout 0.5, lr 1e-3, batch 256) and a small search
# around it on Beauty (dropout, lr, batch), selected on validation NDCG@20. Ordered by what to learn first. Each
# setting is spelt out whole, so the search keeps its units when the profile takes the selected setting.
SEARCHED = ("attn_dropout", "hidden_dropout", "lr", "batch_size")
BEAUTY_SEARCH = tuple(dict(zip(SEARCHED, values)) for values in (
    (0.6, 0.6, 5e-4, 512),      # the strong public logs'
    (0.5, 0.5, 1e-3, 256),      # the paper's setting
    (0.6, 0.6, 1e-3, 256),
    (0.5, 0.5, 5e-4, 512),
    (0.7, 0.7, 5e-4, 512),
    (0.6, 0.6, 5e-4, 256),
))
STEP3 = ("wf_init", "attn_residual")    # fame.md §10 step 3, frozen in the profile as fame_wf_init / _attn_residual


class NotReady(Exception):
    """A plan whose units follow from choices made on validation by an earlier plan: that plan has unpublished
    units, or the profile does not hold its choice yet."""


def finished_records(plan: str, profile: Profile) -> list[dict[str, Any]]:
    """The published records of every unit of ``plan``; NotReady while any is missing."""
    paths = [published(spec, profile) for spec in PLANS[plan](profile)]
    pending = [p.stem for p in paths if not p.exists()]
    if pending:
        raise NotReady(f"plan {plan} has {len(pending)} of {len(paths)} units unpublished ({', '.join(pending)})")
    return [json.loads(p.read_text()) for p in paths]


def chosen_on_validation(plan: str, profile: Profile, fields: tuple[str, ...]) -> dict[str, Any]:
    """``fields`` of the unit of ``plan`` with the best validation NDCG@20 (full ranking)."""
    best = max(finished_records(plan, profile), key=lambda r: r["metrics"]["valid"]["full"][SELECTION_METRIC])
    settings = {**best["model_config"], **best["train_config"]}
    return {f: settings[f] for f in fields}


def require_profile_holds(chosen: dict[str, Any], profile: Profile, plan: str) -> None:
    """NotReady unless the profile's FAME runs use ``chosen`` (the validation choice of ``plan``)."""
    spec = fame_spec(profile, "beauty", 2, 1, profile.seeds[0])
    current = {f: getattr(spec.model_config, f, getattr(spec.train_config, f, None)) for f in chosen}
    if current != chosen:
        raise NotReady(f"plan {plan} chose {chosen} on validation, the {profile.name!r} profile has {current}: "
                       f"set it in seqrec_lib/profiles.py (fame_overrides, fame_wf_init, fame_attn_residual) first")


def beauty_sasrec(profile: Profile) -> list[RunSpec]:
    """SASRec-CE (H = 2) on Beauty: the paper's setting and the search around it, seed 1."""
    base = sasrec_ce_spec(profile, "beauty", 2, profile.seeds[0])
    return [with_overrides(base, **o) for o in BEAUTY_SEARCH]


def beauty_fame_step3(profile: Profile) -> list[RunSpec]:
    """Issue 12 step 3: FAME w/o MoE at H = 2 on Beauty, wf_init × attn_residual (one pretraining), in the
    SASRec-CE setting the search selected (which the profile must hold)."""
    require_profile_holds(chosen_on_validation("beauty-sasrec", profile, SEARCHED), profile, "beauty-sasrec")
    base = fame_spec(profile, "beauty", 2, 1, profile.seeds[0])
    return [with_overrides(base, wf_init=w, attn_residual=r)
            for w in ("block_selector", "random") for r in ("slice", "none")]


def _ready_for_sweeps(profile: Profile) -> None:
    """The search's setting and step 3's choice are in the profile (NotReady otherwise)."""
    require_profile_holds(chosen_on_validation("beauty-fame-step3", profile, STEP3), profile, "beauty-fame-step3")


def fig5_runs(dataset: str) -> Callable[[Profile], list[RunSpec]]:
    """Fig. 5 on ``dataset``: SASRec-CE(H) and FAME w/o MoE(H) for every H of the profile, seed 1."""

    def plan(profile: Profile) -> list[RunSpec]:
        _ready_for_sweeps(profile)
        return head_sweep_specs(profile, dataset)

    return plan


def fig6_runs(dataset: str) -> Callable[[Profile], list[RunSpec]]:
    """Fig. 6 on ``dataset``: FAME(H*, N) for every N, H* = its own Fig. 5's best FAME w/o MoE on validation."""

    def plan(profile: Profile) -> list[RunSpec]:
        return expert_sweep_specs(profile, dataset,
                                  best_heads(finished_records(f"{dataset}-fig5", profile), dataset))

    return plan


def table2_rows(dataset: str) -> Callable[[Profile], list[RunSpec]]:
    """Table 2's rows on ``dataset`` (SASRec-CE(H*), FAME w/o MoE(H*), FAME(H*, N*), every seed), H* and N* chosen
    on Beauty's validation by Figs. 5-6 (other datasets use Beauty's unless their own sweeps are run)."""

    def plan(profile: Profile) -> list[RunSpec]:
        heads = best_heads(finished_records("beauty-fig5", profile), "beauty")
        experts = best_experts(finished_records("beauty-fig6", profile), "beauty", heads)
        return table_specs(profile, dataset, heads, experts)

    return plan


def case_study_run(dataset: str) -> Callable[[Profile], list[RunSpec]]:
    """Fig. 7's model on ``dataset``: the FAME that notebook 05 reads back (``explore.load_case_models``), at the
    profile's case-study H (the paper's H = 2: a gate over one head has nothing to choose), seed 1."""

    def plan(profile: Profile) -> list[RunSpec]:
        _ready_for_sweeps(profile)
        return [single_run_spec(profile, "fame", dataset, n_heads=profile.case_study_heads)]

    return plan


ML100K_CORE = ("MOJITO", "SASRec-BCE", "SASRec-CE", "TiSASRec")


def ml100k_mojito(profile: Profile) -> list[RunSpec]:
    """Issue 16: the MOJITO table on ML-100K, every row on the same windows, training and Adam β's (0.9, 0.98),
    both protocols. What issue 16 needs first comes first: the core rows (MOJITO, SASRec-BCE, SASRec-CE,
    TiSASRec) seed by seed, then MOJITO's four ablations seed by seed, then the profile's other time baselines
    (issue 13) seed by seed."""

    def tier(spec: RunSpec) -> int:
        return 0 if spec.label in ML100K_CORE else 1 if spec.label.startswith("MOJITO (") else 2

    return sorted(time_specs(profile, "ml-100k", ablations=True), key=tier)


def beauty_baselines(profile: Profile) -> list[RunSpec]:
    """Table 2's baseline columns on Beauty (docs/baselines.md §5), seed 1 of every model first, then seeds 2-3."""
    return baseline_specs(profile, "beauty", profile.seeds)


def seed_one_baselines(dataset: str) -> Callable[[Profile], list[RunSpec]]:
    """Table 2's baseline columns on ``dataset``, the profile's first seed."""

    def plan(profile: Profile) -> list[RunSpec]:
        return baseline_specs(profile, dataset)

    return plan


PLANS: dict[str, Callable[[Profile], list[RunSpec]]] = {
    "beauty-sasrec": beauty_sasrec,
    "beauty-fame-step3": beauty_fame_step3,
    "ml100k-mojito": ml100k_mojito,
    "beauty-baselines": beauty_baselines,
    "toys-baselines": seed_one_baselines("toys"),
    "sports-baselines": seed_one_baselines("sports"),
    "beauty-fig5": fig5_runs("beauty"),
    "beauty-fig6": fig6_runs("beauty"),
    "beauty-table2": table2_rows("beauty"),
    "beauty-case-study": case_study_run("beauty"),
    "sports-case-study": case_study_run("sports"),
    "toys-table2": table2_rows("toys"),
    "sports-table2": table2_rows("sports"),
    "toys-fig5": fig5_runs("toys"),
    "toys-fig6": fig6_runs("toys"),
    "sports-fig5": fig5_runs("sports"),
    "sports-fig6": fig6_runs("sports"),
}
"""Every plan. Issue 12's (beauty-sasrec, beauty-fame-step3, beauty-fig5, beauty-fig6, then the table2 ones) each
follow from the validation choices of the ones before it and raise NotReady until those are made; the
case-study ones train notebook 05's FAME (Fig. 7); toys/sports-fig5 and -fig6 are those datasets' own sweeps (Table 2
there runs at Beauty's H* and N* either way)."""


def published(spec: RunSpec, profile: Profile) -> Path:
    """Where ``spec``'s record is committed: ``outputs/paper/records/<run folder name>.json``."""
    return published_record(run_dir(spec, profile, PAPER / "runs"))


def pending(plan: str, profile: Profile, limit: int | None = None) -> list[Path]:
    """The published-record paths of ``plan``'s (first ``limit``) units that have none yet (NotReady while the
    plan waits for another's choices)."""
    return [path for path in (published(spec, profile) for spec in PLANS[plan](profile)[:limit]) if not path.exists()]
