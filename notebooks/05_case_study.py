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
# (fame.md §5.4). The paper shows Sports user 230 with H = 2: one head's list contains the ground truth,
# the gate trusts that head more (0.82 vs 0.18), and the combined list finds the item that plain SASRec
# misses (fame.md §9.3).
#
# Here we draw the same picture for the profile's default user: the history, each head's top-10 with its
# gate weight and the target's rank, the combined list and SASRec's. Cells are coloured by an item facet
# (synthetic data: the planted genre or creator; MovieLens: genres; Amazon: brand/category attributes),
# so you can see which facet each head follows.
#
# Run it in Jupyter with `interactive = True` to pick any user.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke | demo | paper (seqrec_lib/profiles.py)
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
dataset = ""              # empty: the profile's case-study dataset
user = 0                  # 0: the case-study user of the profile (paper profile: Sports user 230)
k = 10                    # length of the lists
facet = ""                # facet that colours the cells; empty: the user's planted facet (synthetic) or the first one
interactive = False       # True in Jupyter: an explorer to pick any user (run_all keeps it False)

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
import json

from seqrec_lib import analysis

default_dataset, default_user = P.case_study
dataset = dataset or default_dataset
user = user or (default_user if dataset == default_dataset else 1)
spec = experiments.single_run_spec(P, "fame", dataset, n_heads=P.case_study_heads)
record = experiments.run(spec, P, ROOT)
fame, data, split = experiments.load_trained(record, P)
# the baseline is the SASRec-CE checkpoint FAME was fine-tuned from (fame.md §9.3)
pretrained = json.loads((Path(record["pretrained"]["run_dir"]) / "result.json").read_text())
sasrec, _, _ = experiments.load_trained(dict(pretrained, run_dir=record["pretrained"]["run_dir"]), P)
print(f"FAME H={spec.model_config.n_heads}, N={spec.model_config.n_experts} on {dataset}; "
      f"test NDCG@20 {record['metrics']['test']['full']['NDCG@20']:.4f} "
      f"(SASRec-CE {pretrained['metrics']['test']['full']['NDCG@20']:.4f})")

# %% [markdown]
# ## What this user is known to like
#
# On synthetic data we know the truth: every user follows one facet (genre or creator) with a few
# preferred values, one half on weekday daytime and one half in evenings and weekends.

# %%
planted, preferred = None, ()
if dataset == "synthetic":
    from seqrec_lib.data import generate_synthetic

    truth = generate_synthetic(P.synthetic)[1]
    planted = str(truth.dominant_facet[user - 1])
    day, evening = truth.preferred[user - 1]
    preferred = day + evening
    display(Markdown(f"User {user} follows **{planted}**: {', '.join(day)} on weekday daytime, "
                     f"{', '.join(evening)} in evenings and weekends."))
facet = facet or planted or (sorted(data.item_facets)[0] if data.item_facets else None)
print("cells coloured by:", facet)

# %% [markdown]
# ## Figure 7

# %%
case = analysis.case_study(fame, split, user, k=k, data=data, baseline=sasrec)
fig = plots.case_study_figure(case, dataset, facet=facet, emphasis=preferred if facet == planted else ())
plots.save_figure(fig, FIGURES, f"fig7_case_study_{dataset}_user{user}")
fig

# %% [markdown]
# Each list's dominant facet label and the share of its items carrying it (`*_top`, `*_share`), the
# gate weight and the target's 0-based rank:

# %%
facets = analysis.facet_table(case)
plots.save_table(facets, RESULTS, f"case_study_{dataset}_user{user}",
                 note="Full ranking, history other than the target excluded; target_rank is 0-based.")
facets

# %% [markdown]
# ## Over all users: does each head follow a facet?
#
# For every test user, the share of each head's top-k items that carry the user's most frequent label
# of a facet, against the share a random list would have (chance). A head clearly above chance follows
# that facet.

# %%
for name in data.item_facets:
    alignment = analysis.head_facet_alignment(fame, split, data.item_facets, name, k=k)
    plots.save_table(alignment, RESULTS, f"facet_alignment_{dataset}_{name}")
    fig = plots.facet_alignment_figure(alignment, dataset, name)
    plots.save_figure(fig, FIGURES, f"05_facet_alignment_{dataset}_{name}")
    display(fig)

# %% [markdown]
# ## Explore any user
#
# With `interactive = True` (in Jupyter) pick a user; headless runs (papermill, `run_all.sh`) skip this.

# %%
if interactive:
    import ipywidgets as widgets

    def show(user):
        case = analysis.case_study(fame, split, user, k=k, data=data, baseline=sasrec)
        follows = planted is not None and str(truth.dominant_facet[user - 1]) == facet
        emphasis = truth.preferred_values(user) if follows else ()
        display(plots.case_study_figure(case, dataset, facet=facet, emphasis=emphasis), analysis.facet_table(case))

    widgets.interact(show, user=widgets.BoundedIntText(value=user, min=1, max=split.n_users, description="user"))
else:
    print("interactive = False: set it to True in Jupyter to explore other users")
