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
# # 04 · Do the heads look at different things?
#
# If several heads attend in the same way, they are redundant. Our protocol (docs/analysis.md §1): for each test
# user and each attention layer, take every pair of heads and measure how far apart their attention maps
# are (Frobenius distance, restricted to the user's real positions), and the same for the heads' outputs;
# average over head pairs, then over users, with a bootstrap 95% interval.
#
# We compare **SASRec-CE, FAME and MOJITO at the same H** on the same users. Attention distances compare
# across models; a scale-free version divides by √(2·n_u) so it lies in [0, 1]. Output distances live on
# different scales per model (FAME's are layer-normalised), so read them within a model.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke | demo | paper (seqrec_lib/profiles.py)
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
dataset = ""              # empty: the profile's first dataset with timestamps (MOJITO needs them)
n_boot = 2000             # bootstrap resamples

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd
from IPython.display import display

from seqrec_lib import experiments, plots
from seqrec_lib.profiles import get_profile

P = get_profile(profile)
OUT = Path(outputs) / P.name
FIGURES, RESULTS = OUT / "figures", OUT / "results"
ROOT = experiments.runs_root(P, outputs)          # one folder per training run; finished runs are read back
print(f"profile {P.name!r}: {P.description}")

# %% [markdown]
# ## The three models
#
# The same runs as `01_train` (read back if they exist), on a dataset with timestamps.

# %%
dataset = dataset or P.time_datasets[0]
records = {}
for model in ("sasrec", "fame", "mojito"):
    record = experiments.run(experiments.single_run_spec(P, model, dataset), P, ROOT)
    records[record["label"]] = record
models = {label: experiments.load_trained(record, P) for label, record in records.items()}
pd.DataFrame.from_dict({label: {"heads": r["model_config"]["n_heads"], "layers": r["model_config"]["n_blocks"],
                                "test NDCG@10 (full)": r["metrics"]["test"]["full"]["NDCG@10"]}
                        for label, r in records.items()}, orient="index")

# %%
from seqrec_lib import analysis

tables = []
for label, (model, _, split) in models.items():
    table = analysis.head_diversity(model, split, "test", seed=0, n_boot=n_boot)
    tables.append(table.assign(label=label))
diversity = pd.concat(tables, ignore_index=True)[["label", "layer", "quantity", "mean", "ci_low", "ci_high",
                                                   "n_users", "n_heads"]]
plots.save_table(diversity.set_index(["label", "layer", "quantity"]), RESULTS, f"head_diversity_{dataset}",
                 note="Mean pairwise distance between heads per user and layer, averaged over test users; "
                      f"95% percentile-bootstrap interval ({n_boot} resamples, seed 0); docs/analysis.md §1.")
diversity.pivot_table(index=["label", "layer"], columns="quantity", values="mean").round(3)

# %% [markdown]
# ## The figure
#
# Bars are means over users, whiskers the bootstrap 95% interval. FAME's last layer is its MoE layer: its
# "attention" is each head's expert mixture, its "output" the per-head representation F^(h) that the head
# predicts from.

# %%
fig = plots.head_diversity_figure(diversity, dataset)
plots.save_figure(fig, FIGURES, f"04_head_diversity_{dataset}")
fig

# %% [markdown]
# ## Which pairs of heads differ?
#
# The bars average over the pairs of heads. The heatmaps keep the pairs apart: cell (h, h') is the
# scale-free attention distance between heads h and h', averaged over the test users (docs/analysis.md §1),
# one matrix per model and layer, on one colour scale. With H = 2 there is one pair per layer; with the
# paper profile's larger H they show whether a few heads stand apart or all differ alike.

# %%
matrices = {label: analysis.head_distance_matrices(model, split, "attention_norm")
            for label, (model, _, split) in models.items()}
fig = plots.head_distance_figure(matrices, dataset, "attention_norm")
plots.save_figure(fig, FIGURES, f"04_head_distances_{dataset}")
fig

# %% [markdown]
# What the distances summarise, for one user: each head's attention map in the last layer (row: the
# position predicting the next item; column: the earlier item it attends to). Heads that look alike here
# are the pairs with small distances above.

# %%
user = P.case_study[1] if P.case_study[0] == dataset else 1
maps = {}
for label, (model, _, split) in models.items():
    items, layers = analysis.attention_maps(model, split, user)
    maps[label] = layers[-1]
fig = plots.attention_maps_figure(maps, items, dataset, user, layer="last")
plots.save_figure(fig, FIGURES, f"04_attention_maps_{dataset}_user{user}")
fig

# %% [markdown]
# ## Is the difference real? Paired bootstrap on the same users
#
# Attention distance of FAME and of MOJITO minus SASRec's, per layer, with users resampled jointly.
# An interval that excludes 0 means the difference is not an accident of which users we drew.

# %%
distances = {label: analysis.per_user_head_distances(model, split, "test", seed=0)
             for label, (model, _, split) in models.items()}
paired = pd.concat([analysis.compare_head_diversity(distances[label], distances["SASRec-CE"], "attention",
                                                    n_boot=n_boot).assign(comparison=f"{label} − SASRec-CE")
                    for label in ("FAME", "MOJITO")], ignore_index=True)
paired.set_index(["comparison", "layer"]).round(4)

# %% [markdown]
# ## Sensitivity: MOJITO without its evaluation-time attention noise
#
# MOJITO adds noise to its attention logits even when scoring (docs/mojito.md §5.1). Turning it off (same
# weights) shows how much of its head diversity comes from the noise.

# %%
import dataclasses

from seqrec_lib.models.registry import build_model

mojito, _, mojito_split = models["MOJITO"]
quiet = build_model("mojito", mojito_split, dataclasses.replace(mojito.config, attn_noise_at_eval=False)) \
    if hasattr(mojito, "config") else None
if quiet is not None:
    quiet.load_state_dict(mojito.state_dict())
    noise_off = analysis.head_diversity(quiet.eval(), mojito_split, "test", seed=0, n_boot=n_boot)
    noise = pd.concat({"noise on": diversity[diversity["label"] == "MOJITO"].set_index(["layer", "quantity"])["mean"],
                       "noise off": noise_off.set_index(["layer", "quantity"])["mean"]}, axis=1)
    display(noise.assign(difference=noise["noise on"] - noise["noise off"]).round(5))
else:
    print("this MOJITO model does not expose its config; skipped")
