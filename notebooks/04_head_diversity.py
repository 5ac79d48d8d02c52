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
# If several heads attend in the same way, they are redundant. MOJITO's authors argue that mixing item and
# time-context attention makes heads less redundant; FAME gives each head its own prediction and a gate over them.
# Our protocol (docs/analysis.md §1): for each test user and each attention layer, take every pair of heads and
# measure how far apart their attention maps are (Frobenius distance over the user's real positions), and the
# same for the heads' outputs; average over head pairs, then over users.
#
# Two comparisons, each over every training seed of the profile:
#
# - **time**: MOJITO beside SASRec-CE, SASRec-BCE and TiSASRec, the rows of MOJITO's table, on a dataset with
#   timestamps (paper profile: ML-100K, H = 2);
# - **facets**: FAME beside the SASRec-CE it is fine-tuned from (paper profile: Beauty, H = 2, N = 4).
#
# Per model: the mean over seeds of the per-user distances, a 95 % bootstrap interval over users, and the
# spread over seeds. Attention distances compare across models; the scale-free one divides by √(2·n_u) so it
# lies in [0, 1]. Output distances live on each model's own scale: read them within a model.
#
# > With `profile = "demo"` (what `./run_all.sh` runs) this is a check that the pipeline works, on small
# > synthetic data with short budgets; `profile = "smoke"` gives a look in seconds. The paper profile reads the
# > committed records and shipped weights (`outputs/paper/weights/`) and trains nothing.

# %% tags=["parameters"]
profile = "demo"          # smoke: a look in seconds | demo: minutes | paper: the published runs, read back
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
n_boot = 2000             # bootstrap resamples

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd
from IPython.display import display

from seqrec_lib import analysis, experiments, plots
from seqrec_lib.profiles import get_profile

P = get_profile(profile)
OUT = Path(outputs) / P.name
FIGURES, RESULTS = OUT / "figures", OUT / "results"
ROOT = experiments.runs_root(P, outputs)          # one folder per training run; finished runs are read back
print(f"profile {P.name!r}: {P.description}")

# %% [markdown]
# ## The runs
#
# Read back where they exist (the same runs as `01_train` and MOJITO's table), trained otherwise (smoke, demo).

# %%
comparisons = {name: experiments.with_weights(experiments.run_many(experiments.to_run(specs, P, ROOT), P, ROOT), P)
               for name, specs in experiments.head_diversity_specs(P).items()}
pd.DataFrame([{"comparison": name, "label": r["label"], "dataset": r["dataset"], "seed": r["seed"],
               "heads": r["model_config"]["n_heads"], "test NDCG@10 (full)": r["metrics"]["test"]["full"]["NDCG@10"]}
              for name, records in comparisons.items() for r in records])

# %% [markdown]
# ## Distances between heads, per model and layer
#
# `spread over seeds` is the std of the per-seed means (NaN with one seed).

# %%
distances, models = {}, {}
for name, records in comparisons.items():
    for record in records:
        model, _, split = experiments.load_trained(record, P)
        key = (name, record["dataset"], record["label"])
        distances.setdefault(key, []).append(analysis.per_user_head_distances(model, split, "test", seed=0))
        models.setdefault(key, (model, split))            # the first seed's model, for the pictures below
tables = [analysis.seeds_diversity_table(dists, n_boot=n_boot).assign(comparison=name, dataset=dataset, label=label)
          for (name, dataset, label), dists in distances.items()]
diversity = pd.concat(tables, ignore_index=True)[["comparison", "dataset", "label", "layer", "quantity", "mean",
                                                   "ci_low", "ci_high", "seed_std", "n_seeds", "n_users",
                                                   "n_heads"]]
plots.save_table(diversity.set_index(["comparison", "dataset", "label", "layer", "quantity"]), RESULTS,
                 "head_diversity",
                 note="Mean pairwise distance between heads per user and layer (docs/analysis.md §1): the mean over "
                      f"training seeds of the per-user distance, averaged over test users; 95% percentile-bootstrap "
                      f"interval over users ({n_boot} resamples, seed 0) of the seed-averaged per-user values; "
                      "seed_std: std over seeds of the per-seed means.")
diversity.pivot_table(index=["comparison", "label", "layer"], columns="quantity", values="mean").round(3)

# %% [markdown]
# ## The figure
#
# Bars are means, whiskers the bootstrap 95 % interval over users. FAME's last layer is its MoE layer: its
# "attention" is each head's expert mixture, its "output" the per-head representation the head predicts from.

# %%
for name, dataset in dict.fromkeys((n, d) for n, d, _ in distances):
    frame = diversity[(diversity["comparison"] == name) & (diversity["dataset"] == dataset)]
    fig = plots.head_diversity_figure(frame, dataset)
    plots.save_figure(fig, FIGURES, f"04_head_diversity_{name}_{dataset}")
    display(fig)

# %% [markdown]
# ## Is the difference real? Paired bootstrap on the same users
#
# Each model's scale-free attention distance minus SASRec-CE's, per layer, on the seed-averaged per-user values,
# users resampled jointly. An interval that excludes 0 says the difference is not an accident of which users we
# drew; the seed spread above says whether it holds across training runs.

# %%
paired = []
for (name, dataset, label), dists in distances.items():
    reference = distances.get((name, dataset, experiments.SASREC_CE))
    if label != experiments.SASREC_CE and reference is not None:
        paired.append(analysis.compare_head_diversity(analysis.mean_over_seeds(dists),
                                                      analysis.mean_over_seeds(reference), "attention_norm",
                                                      n_boot=n_boot).assign(comparison=f"{label} − SASRec-CE",
                                                                            dataset=dataset))
paired = pd.concat(paired, ignore_index=True) if paired else pd.DataFrame(
    columns=["dataset", "comparison", "layer", "quantity", "mean_diff", "ci_low", "ci_high", "n_users"])
plots.save_table(paired.set_index(["dataset", "comparison", "layer"]), RESULTS, "head_diversity_paired",
                 note=f"Scale-free attention distance, model minus SASRec-CE per user (seed-averaged), 95% "
                      f"percentile-bootstrap interval over users ({n_boot} resamples, seed 0).")
paired.set_index(["dataset", "comparison", "layer"]).round(4)

# %% [markdown]
# ## Which pairs of heads differ, and what one user's maps look like
#
# The heatmaps keep the pairs of heads apart: cell (h, h') is the scale-free attention distance between heads h
# and h', averaged over test users (the first seed's model). With H = 2 there is one pair per layer. Then one
# user's last-layer attention maps: row = the position predicting the next item, column = the earlier item it
# attends to.

# %%
for name, dataset in dict.fromkeys((n, d) for n, d, _ in models):
    chosen = {label: pair for (n, d, label), pair in models.items() if (n, d) == (name, dataset)}
    matrices = {label: analysis.head_distance_matrices(model, split, "attention_norm")
                for label, (model, split) in chosen.items()}
    fig = plots.head_distance_figure(matrices, dataset, "attention_norm")
    plots.save_figure(fig, FIGURES, f"04_head_distances_{name}_{dataset}")
    display(fig)
    user = P.case_study[1] if P.case_study[0] == dataset else 1
    maps = {}
    for label, (model, split) in chosen.items():
        items, layers = analysis.attention_maps(model, split, user)
        maps[label] = layers[-1]
    fig = plots.attention_maps_figure(maps, items, dataset, user, layer="last")
    plots.save_figure(fig, FIGURES, f"04_attention_maps_{name}_{dataset}_user{user}")
    display(fig)

# %% [markdown]
# ## Sensitivity: MOJITO without its evaluation-time attention noise
#
# MOJITO adds noise to its attention logits even when scoring (docs/mojito.md §5.1). Turning it off (same
# weights, the first seed's model) shows how much of its head diversity comes from the noise.

# %%
import dataclasses

from seqrec_lib.models.registry import build_model

for (name, dataset, label), (model, split) in models.items():
    if not getattr(getattr(model, "config", None), "attn_noise_at_eval", False):
        continue
    quiet = build_model("mojito", split, dataclasses.replace(model.config, attn_noise_at_eval=False))
    quiet.load_state_dict(model.state_dict())
    noise_on = analysis.diversity_table(distances[(name, dataset, label)][0], n_boot=n_boot)
    noise_off = analysis.head_diversity(quiet.eval(), split, "test", seed=0, n_boot=n_boot)
    noise = pd.concat({"noise on": noise_on.set_index(["layer", "quantity"])["mean"],
                       "noise off": noise_off.set_index(["layer", "quantity"])["mean"]}, axis=1)
    noise = noise.assign(difference=noise["noise on"] - noise["noise off"])
    plots.save_table(noise, RESULTS, f"head_diversity_{label.lower()}_noise",
                     note=f"{label} on {dataset}, the first seed's weights: mean head distances over test users with "
                          "and without the attention noise at evaluation time.")
    display(noise.round(5))
