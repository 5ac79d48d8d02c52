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
# # 00 · The data
#
# Every experiment starts from **per-user chronological sequences** and the **leave-one-out split** of
# FAME (docs/protocol.md §1): for a user with sequence *s*, the model trains on `s[:-3]` with a target at every
# position, is validated on predicting `s[-2]` from `s[:-2]`, and tested on predicting `s[-1]` from
# `s[:-1]`.
#
# This notebook prepares every dataset of the chosen profile (downloading and checking raw files when
# needed), prints their statistics beside the FAME paper's Table 1, and plots how long the sequences are.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke: a look in seconds | demo: minutes | paper: the published runs, read back
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)

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

# %% [markdown]
# ## Statistics of the profile's datasets
#
# `load_split` loads a dataset (cached after the first time) and builds its split. The `demo` and
# `smoke` profiles use the **synthetic** dataset: generated offline, with item facets (genre, creator)
# and time-of-day effects planted on purpose, so we know what the models *should* find.

# %%
data = {name: experiments.load_split(name, P)[0] for name in P.datasets}
stats = pd.DataFrame.from_records([{"dataset": name, **d.statistics()} for name, d in data.items()],
                                  index="dataset")
stats["facets"] = [", ".join(d.item_facets) or "-" for d in data.values()]
stats["timestamps"] = [d.timestamps is not None for d in data.values()]
plots.save_table(stats, RESULTS, "dataset_statistics",
                 note="Measured after preprocessing; density = interactions / (users × items).")
stats

# %% [markdown]
# ## Beside the FAME paper's Table 1
#
# The Amazon files are exactly the S3-Rec/ICLRec files, so our counts should match the paper. They do,
# except for **typos in Table 1** (docs/papers.md §1): Sports has 35,598 users (printed 25,598), Toys has
# 11,924 items (printed 19,392, which also makes its printed density wrong), and the ML-20m action count
# is printed "185,6746". The `flag` column marks them; the `ours` columns are filled for the datasets of
# this profile (none on the synthetic profiles, which leave them out).

# %%
from seqrec_lib import paper_results

table1 = paper_results.table1_frame()
ours = stats[["users", "items", "interactions"]].rename(columns=lambda c: f"ours_{c}")
comparison = table1.join(ours, on="our_dataset")[
    ["dataset", "printed_users", "users", "ours_users", "printed_items", "items", "ours_items",
     "printed_actions_text", "actions", "ours_interactions", "printed_density", "density", "flagged", "note"]]
ours_columns = ["ours_users", "ours_items", "ours_interactions"]
if comparison[ours_columns].isna().all().all():    # smoke, demo: none of Table 1's datasets is in this profile
    comparison = comparison.drop(columns=ours_columns)
    print(f"profile {P.name!r} loads none of Table 1's datasets: the paper profile fills the ours_* columns")
plots.save_table(comparison.set_index("dataset"), RESULTS, "table1_comparison",
                 note="printed_*: FAME (WSDM 2025) Table 1 as printed; users/items/actions/density: measured on "
                      "the S3-Rec files (docs/data.md §3); ours_*: this profile's data. flagged: printed typos.")
comparison

# %% [markdown]
# ## How long are the sequences?
#
# Most users have few interactions, a few have very many. Models read at most `max_len` items (the most
# recent ones); the dotted line shows how many users are truncated.

# %%
fig = plots.length_distribution_figure({name: d.lengths for name, d in data.items()}, max_len=P.max_len)
plots.save_figure(fig, FIGURES, "00_sequence_lengths")
fig

# %% [markdown]
# ## What the split gives each model
#
# One training sample per user (all positions at once, the last `max_len` items) for the FAME experiments;
# every row of the MOJITO table (MOJITO, SASRec-BCE, SASRec-CE, the ablations) trains on the same windows of
# the sequence instead (`samples_step`, docs/data.md §8), which cover more of each long sequence.

# %%
rows = {}
for name in P.datasets:
    for kind, step in (("all positions", None), (f"MOJITO windows (step {P.mojito_samples_step})",
                                                 P.mojito_samples_step)):
        _, split = experiments.load_split(name, P, step)
        rows[(name, kind)] = {"training samples": len(split.train),
                              "training targets": int((split.train.targets > 0).sum()),
                              "valid users": len(split.valid), "test users": len(split.test)}
pd.DataFrame(rows).T

# %% [markdown]
# ## How coarse are the timestamps?
#
# MOJITO reads the calendar context of every input and of the held-out item (docs/mojito.md §3, §6). Where
# timestamps tie, the context of the last items barely changes: a time-aware model then has little to read at the
# end of a sequence, and the order of tied items is only the file's (we sort stably, docs/data.md §6). These
# shares, measured by `seqrec_lib.data.temporal.timestamp_ties`, come before any time-aware result on a dataset.

# %%
from seqrec_lib.data import temporal

timed = {name: d for name, d in data.items() if d.timestamps is not None}
ties = pd.DataFrame({name: temporal.timestamp_ties(d) for name, d in timed.items()}).T
ties.index.name = "dataset"
plots.save_table(ties, RESULTS, "timestamp_ties",
                 note="consecutive_ties: consecutive interactions of a user with the same timestamp; "
                      "test_ties_valid: users whose test item has their validation item's timestamp; "
                      "test_within_hour: users whose test item comes within an hour of it; median_test_gap_s: "
                      "the median of that gap in seconds.")
for name, row in ties.iterrows():
    display(Markdown(f"**{plots.dataset_title(name)}**: {row.consecutive_ties:.0%} of consecutive interactions "
                     f"share a timestamp; {row.test_ties_valid:.0%} of test items share the validation item's "
                     f"timestamp and {row.test_within_hour:.0%} come within an hour of it (median gap "
                     f"{row.median_test_gap_s:,.0f} s)."))
ties

# %%
fig = plots.time_gaps_figure({name: temporal.gap_table(d) for name, d in timed.items()})
plots.save_figure(fig, FIGURES, "00_time_gaps")
fig
