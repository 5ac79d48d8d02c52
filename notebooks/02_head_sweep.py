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
# # 02 · How many heads? (FAME Figure 5)
#
# FAME's first idea is to let **each attention head predict on its own** and to mix the heads' predictions
# with a learned gate, instead of concatenating the heads into one representation. *FAME w/o MoE* is
# exactly that, without the mixture of experts (docs/fame.md §7).
#
# For every H in the profile we train SASRec-CE with H heads, then fine-tune FAME w/o MoE from it. The
# paper's claims (docs/papers.md §4): both improve over H = 1 at some H > 1; FAME w/o MoE ≥ SASRec at every H;
# at H = 1 the two are (nearly) the same.
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
specs = [spec for dataset in DATASETS for spec in experiments.head_sweep_specs(P, dataset)]
records = experiments.run_many(experiments.to_run(specs, P, ROOT), P, ROOT, executor=executor, address=address)
frame = experiments.results_frame(records)
best = {dataset: experiments.best_heads(records, dataset) for dataset in DATASETS}
protocol_text = records[0]["protocol"]["evaluation"][0]["text"]
print("H* (best validation NDCG@20 of FAME w/o MoE):", best)

# %% [markdown]
# ## The runs
#
# Test NDCG@20 and HR@20 per H; `valid` is the validation NDCG@20 that chooses H*.

# %%
columns = {"valid_full_NDCG@20": "valid NDCG@20", "test_full_NDCG@20": "test NDCG@20",
           "test_full_HR@20": "test HR@20"}
table = frame.groupby(["dataset", "heads", "label"])[list(columns)].mean().rename(columns=columns)
plots.save_table(table, RESULTS, "head_sweep", note=f"Protocol: {protocol_text}. H* = {best}.")
plots.save_table(pd.DataFrame({"dataset": list(best), "best_heads": list(best.values())}), RESULTS, "best_heads")
table.unstack("label")

# %% [markdown]
# ## Figure 5
#
# Top row NDCG@20, bottom row HR@20, one column per dataset; the grey band marks H* chosen on validation.

# %%
fig = plots.head_sweep_figure(frame, datasets=DATASETS, protocol_text=protocol_text, best_heads=best)
plots.save_figure(fig, FIGURES, "fig5_head_sweep")
fig

# %% [markdown]
# ## Do the paper's claims hold here?
#
# A small profile trains few epochs on small data, so read these as a check of the pipeline more than of
# the paper; the `paper` profile is the real test.

# %%
wide = frame.pivot_table(index=["dataset", "heads"], columns="label", values="test_full_NDCG@20")
gap = wide["FAME w/o MoE"] - wide["SASRec-CE"]
claims = pd.DataFrame({
    "FAME w/o MoE ≥ SASRec at every H": gap.groupby("dataset").apply(lambda g: bool((g >= 0).all())),
    "some H > 1 beats H = 1 (FAME w/o MoE)": wide["FAME w/o MoE"].groupby("dataset").apply(
        lambda g: bool(g.droplevel(0).loc[lambda s: s.index > 1].max() > g.droplevel(0).get(1, float("inf")))),
    "H*": pd.Series(best),
})
claims
