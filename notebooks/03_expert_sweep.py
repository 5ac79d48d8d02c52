# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · How many experts? (FAME Figure 6)
#
# FAME's second idea: in the last attention layer, each head gets **N query experts** and a router that
# mixes them per position (docs/fame.md §2), so a head can attend for several "preferences" within its facet.
#
# H is fixed at H*, the head count chosen on validation in `02_head_sweep`; the red line is FAME w/o MoE
# at H* (N = 1). The paper's claim (docs/papers.md §4): some N lies above the red line on every dataset.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke: a look in seconds | demo: minutes | paper: the published runs, read back
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
executor = "local"        # "local": one run after the other; "ray": Ray tasks, runs in parallel
address = None            # with "ray": None starts a local Ray, "auto" joins `ray start`'s cluster
datasets = ""             # comma-separated subset of the profile's FAME datasets (e.g. "beauty"); "": all

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd

from seqrec_lib import experiments, plots
from seqrec_lib.profiles import get_profile

P = get_profile(profile)
OUT = Path(outputs) / P.name
FIGURES, RESULTS = OUT / "figures", OUT / "results"
ROOT = experiments.runs_root(P, outputs)          # one folder per training run; finished runs are read back
DATASETS = P.fame_subset(datasets)
print(f"profile {P.name!r}: {P.description}; FAME datasets here: {', '.join(DATASETS)}")

# %%
head_specs = [spec for dataset in DATASETS for spec in experiments.head_sweep_specs(P, dataset)]
head_records = experiments.run_many(experiments.to_run(head_specs, P, ROOT), P, ROOT, executor=executor,
                                    address=address)   # read back from 02
heads = {dataset: experiments.best_heads(head_records, dataset) for dataset in DATASETS}
specs = [spec for dataset in DATASETS for spec in experiments.expert_sweep_specs(P, dataset, heads[dataset])]
records = experiments.run_many(experiments.to_run(specs, P, ROOT), P, ROOT, executor=executor, address=address)
frame = experiments.results_frame(records)
experts = {dataset: experiments.best_experts(records, dataset, heads[dataset]) for dataset in DATASETS}
protocol_text = records[0]["protocol"]["evaluation"][0]["text"]
print("H*:", heads, " N* (best validation NDCG@20 of FAME at H*):", experts)

# %% [markdown]
# ## The reference lines: FAME w/o MoE and SASRec-CE at H*
#
# FAME is fine-tuned from SASRec-CE(H*), so it should beat both lines: the red one (FAME w/o MoE) and the
# dotted one (SASRec-CE). With several seeds the points carry error bars and the lines a band of ±1 std over
# seeds; with one seed (the demo) there is no spread to judge a small gap against, so read none as a win.

# %%
head_frame = experiments.results_frame(head_records)
metrics = ("NDCG@20", "HR@20")


def at_best_heads(label: str) -> dict[str, dict[str, list[float]]]:
    """dataset → metric → the per-seed test values of ``label`` at H*."""
    rows = head_frame[head_frame["label"] == label]
    return {dataset: {m: rows[(rows["dataset"] == dataset) & (rows["heads"] == h)][f"test_full_{m}"].tolist()
                      for m in metrics} for dataset, h in heads.items()}


reference, baseline = at_best_heads("FAME w/o MoE"), at_best_heads("SASRec-CE")
lines = pd.DataFrame({f"{label} test {m}": {d: sum(v[m]) / len(v[m]) for d, v in values.items()}
                      for label, values in (("FAME w/o MoE", reference), ("SASRec-CE", baseline)) for m in metrics})
lines

# %% [markdown]
# ## The runs and Figure 6

# %%
columns = {"valid_full_NDCG@20": "valid NDCG@20", "test_full_NDCG@20": "test NDCG@20",
           "test_full_HR@20": "test HR@20"}
table = frame.groupby(["dataset", "heads", "experts"])[list(columns)].mean().rename(columns=columns)
plots.save_table(table, RESULTS, "expert_sweep",
                 note=f"Protocol: {protocol_text}. H* = {heads}; N* = {experts}; at H* (mean over seeds): "
                      f"{lines.round(4).to_dict(orient='index')}.")
table

# %%
fig = plots.expert_sweep_figure(frame, reference, heads=heads, datasets=DATASETS,
                                protocol_text=protocol_text, best_experts=experts, baseline=baseline)
plots.save_figure(fig, FIGURES, "fig6_expert_sweep")
fig

# %%
best_fame = frame.groupby(["dataset", "experts"])["test_full_NDCG@20"].mean().groupby("dataset").max()[lines.index]
pd.DataFrame({"some N above the red line": best_fame > lines["FAME w/o MoE test NDCG@20"],
              "some N above SASRec-CE": best_fame > lines["SASRec-CE test NDCG@20"]}).rename_axis("NDCG@20")
