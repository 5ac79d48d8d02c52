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
# # 05 · One user, head by head (FAME Figure 7)
#
# FAME gives every head its own top-k list, and a gate decides how much each head counts for this user
# (docs/fame.md §5). The paper shows Sports user 230 with H = 2: one head's list contains the ground truth,
# the gate trusts that head more (0.82 vs 0.18), and the combined list finds the item that a model without
# head weighting misses (docs/analysis.md §2).
#
# Here we draw the same picture for the profile's case-study user: the history, each head's top-10 with its
# gate weight and the target's rank, the combined list, and the list of the SASRec-CE checkpoint FAME was
# fine-tuned from. Cells are coloured by an item facet (synthetic data: the planted genre or creator;
# MovieLens: genres; Amazon: brand/category attributes), so you can see which facet each head follows.
#
# **Live explorer.** Open this notebook in JupyterLab (`jupyter lab notebooks/`, kernel *Python 3*), set
# `interactive = True` in the parameters cell below and run all cells (*Run → Run All Cells*). At the end,
# pick a dataset, the number of heads H and a user: Figure 7 and its table redraw at each change. Runs by
# `run_all.sh` (papermill) leave `interactive = False` and save the static figure.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke: a look in seconds | demo: minutes | paper: the published runs, read back
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
dataset = ""              # empty: the profile's case-study dataset
user = 0                  # 0: the case-study user of the profile (paper profile: Beauty user 230)
heads = 0                 # H of the FAME model; 0: the profile's case-study H
k = 10                    # length of the lists
facet = ""                # facet that colours the cells; empty: the user's planted facet (synthetic) or the first one
interactive = False       # True in JupyterLab: the explorer at the end (dataset, H, user), redrawn live

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from seqrec_lib import experiments, plots
from seqrec_lib.profiles import get_profile

P = get_profile(profile)
OUT = Path(outputs) / P.name
FIGURES, RESULTS = OUT / "figures", OUT / "results"
ROOT = experiments.runs_root(P, outputs)          # one folder per training run; finished runs are read back
print(f"profile {P.name!r}: {P.description}")

# %%
from seqrec_lib import analysis, explore

default_dataset, default_user = P.case_study
dataset = dataset or default_dataset
user = user or (default_user if dataset == default_dataset else 1)
heads = heads or P.case_study_heads
models = explore.load_case_models(P, ROOT, dataset, heads)   # FAME (trained once) and its SASRec-CE checkpoint
print(models.summary())

# %% [markdown]
# ## What this user is known to like
#
# On synthetic data we know the truth: every user follows one facet (genre or creator) with a few
# preferred values, one half on weekday daytime and one half in evenings and weekends.

# %%
planted, day, evening = explore.planted_preferences(P, dataset, user)
if planted:
    display(Markdown(f"User {user} follows **{planted}**: {', '.join(day)} on weekday daytime, "
                     f"{', '.join(evening)} in evenings and weekends."))
else:
    print(f"{dataset}: real data, no planted preferences")

# %% [markdown]
# ## Figure 7
#
# Gold outline: the held-out target. A head whose list follows the user's facet shows a run of one colour;
# the paper's claim is that the gate puts its weight on the head whose list holds the target.

# %%
case, fig, coloured_by = explore.case_figure(models, P, user, k=k, facet=facet)
plots.save_figure(fig, FIGURES, f"fig7_case_study_{dataset}_user{user}")
fig

# %% [markdown]
# Each list's dominant facet label and the share of its items carrying it (`*_top`, `*_share`), the
# gate weight and the target's 0-based rank; then what our numbers say for this user:

# %%
facets = analysis.facet_table(case)
plots.save_table(facets, RESULTS, f"case_study_{dataset}_user{user}",
                 note="Full ranking, history other than the target excluded; target_rank: 1 = top, as in the figure.")
trusted = int(case.gate.argmax())
display(facets, Markdown(
    f"The gate trusts head {trusted + 1} most ({case.gate[trusted]:.2f}); the target is ranked "
    + ", ".join(f"{r + 1} by head {h + 1}" for h, r in enumerate(case.head_ranks))
    + f", {case.combined_rank + 1} by FAME combined and {case.baseline_rank + 1} by SASRec-CE (1 = top). "
    + ("As in the paper, the most trusted head ranks it best." if trusted == int(min(
        range(case.n_heads), key=lambda h: case.head_ranks[h])) else "Unlike the paper's user, the most "
        "trusted head is not the one that ranks it best.")))

# %% [markdown]
# ## Over all users: does the gate trust the head that finds the target?
#
# One user is an anecdote. Over every test user: how often the most trusted head ranks the target best
# (among users whose heads disagree), how often the gate picks the one head whose top-k holds the target
# (the paper's user 230 is such a case), and the weight it gives; `chance` is what a gate blind to the
# heads' lists would score (docs/analysis.md §2).

# %%
trust = analysis.gate_trust(models.fame, models.split, k=k)
plots.save_table(trust, RESULTS, f"gate_trust_{dataset}_H{heads}",
                 note="Test users, full ranking, history other than the target excluded; 95% bootstrap CIs.")
with pd.option_context("display.max_colwidth", None):     # the quantities' text whole
    display(trust)

# %% [markdown]
# ## Over all users: does each head follow a facet?
#
# For every test user, the share of each head's top-k items that carry the user's most frequent label
# of a facet, against the share a random list would have (chance). A head clearly above chance follows
# that facet (docs/analysis.md §3); in short runs the heads stay near chance.

# %%
for name in models.data.item_facets:
    alignment = analysis.head_facet_alignment(models.fame, models.split, models.data.item_facets, name, k=k)
    plots.save_table(alignment, RESULTS, f"facet_alignment_{dataset}_{name}")
    fig = plots.facet_alignment_figure(alignment, dataset, name)
    plots.save_figure(fig, FIGURES, f"05_facet_alignment_{dataset}_{name}")
    display(fig)

# %% [markdown]
# ## Explore any dataset, H and user (live)
#
# With `interactive = True` this cell shows the explorer: two dropdowns (dataset, H) and a user box. Every
# change redraws Figure 7 and its table; a (dataset, H) that has not been trained yet is trained first (the
# status line says so), then kept. It needs a live kernel (JupyterLab); papermill runs skip it.

# %%
if interactive:
    explorer = explore.CaseStudyExplorer(P, ROOT, dataset=dataset, heads=heads, user=user, k=k, facet=facet)
    display(explorer.widget)
else:
    print("interactive = False: set it to True in the parameters cell (in JupyterLab) for the live explorer")
