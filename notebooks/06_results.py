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
# # 06 · Results beside the papers'
#
# The final rows: for every FAME dataset, **SASRec-CE(H\*), FAME w/o MoE(H\*) and FAME(H\*, N\*)**
# over the profile's seeds (H\* and N\* chosen on validation in `02` and `03`), plus the most-popular
# baseline and the baselines trained under the same protocol (GRU4Rec, BERT4Rec, CL4SRec: docs/baselines.md;
# one seed each), next to FAME's Table 2 (the paper's row of the same model beside ours);
# and **the MOJITO table**: MOJITO, SASRec-BCE and SASRec-CE (and, in the
# `paper` profile, MOJITO's ablations), all trained on the same windows, under MOJITO's sampled protocol and
# full ranking.
#
# How to read them (docs/papers.md §2, §6): the paper's SASRec row is much weaker than a CE-trained
# SASRec, so compare FAME with *our* SASRec-CE; MOJITO's own table was not available to us, so its
# acceptance is relative to SASRec-BCE under the same protocol. The protocol is written under each table.
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
from seqrec_lib import paper_results

FULL_METRICS = ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"]
# H* and N* are chosen on the first FAME dataset's validation (Figs. 5-6 there) and used on every dataset
first = P.fame_datasets[0]
head_records = experiments.run_many(experiments.to_run(experiments.head_sweep_specs(P, first), P, ROOT), P, ROOT,
                                    executor=executor, address=address)
heads = experiments.best_heads(head_records, first)
expert_records = experiments.run_many(experiments.to_run(experiments.expert_sweep_specs(P, first, heads), P, ROOT),
                                      P, ROOT, executor=executor, address=address)
experts = experiments.best_experts(expert_records, first, heads)
specs = [s for d in P.fame_datasets
         for s in experiments.table_specs(P, d, heads, experts) + [experiments.pop_spec(P, d, P.seeds[0])]
         + experiments.baseline_specs(P, d, P.seeds)]
fame_records = experiments.run_many(experiments.to_run(specs, P, ROOT), P, ROOT, executor=executor,
                                    address=address)
fame_frame = experiments.results_frame(fame_records)
print("H*:", heads, " N*:", experts, " seeds:", P.seeds)

# %% [markdown]
# ## FAME: our runs (mean ± std over seeds) and the paper's Table 2
#
# Every row, ours and the baselines', is trained and evaluated the same way (protocol under the table); the
# paper's rows come from three frameworks with different protocols (docs/papers.md §2). Beside each of our
# rows that FAME's table also has (SASRec, GRU4Rec, BERT4Rec, CL4SRec, FAME) stands the paper's number for the
# same model, plus the paper's best baseline (ICLRec). `s/epoch` is the median training epoch of our runs.

# %%
summary = experiments.summary_table(fame_frame, FULL_METRICS, protocol="full")
per_epoch = fame_frame.groupby(["dataset", "label"], sort=False)["seconds_per_epoch"].median()
ours = experiments.format_summary(summary, FULL_METRICS).assign(
    **{"s/epoch": [f"{per_epoch[key]:.1f}" if pd.notna(per_epoch.get(key)) else "" for key in summary.index]},
    source="ours")
in_paper = [d for d in P.fame_datasets if d in paper_results.PAPER_DATASETS]
paper_rows = []
for d in in_paper:
    same = paper_results.paper_rows_for(list(summary.loc[d].index), d)
    rows = {f"{paper_results.TABLE2_LABELS[label]} (paper)": row for label, row in same.items()}
    rows["ICLRec (paper)"] = paper_results.paper_row("ICLRec", d)
    paper_rows += [pd.Series({m: f"{row[m]:.4f}" for m in FULL_METRICS}, name=(d, name)) for name, row in rows.items()]
table2 = pd.concat([ours, pd.DataFrame(paper_rows).assign(source="FAME Table 2")]) if paper_rows else ours
protocol_text = fame_records[0]["protocol"]["evaluation"][0]["text"]
note = (f"Protocol: {protocol_text}. Leave-one-out split; checkpoint chosen on validation NDCG@20. "
        f"H* = {heads}, N* = {experts} (chosen on {first}'s validation, for every dataset); mean ± sample std over seeds {list(P.seeds)} (the baselines "
        f"{', '.join(P.baselines) or 'none'}: seed {P.seeds[0]} only, docs/baselines.md §5).")
plots.save_table(summary, RESULTS, "table2_fame", note=note)
plots.save_table(table2, RESULTS, "table2_fame_beside_paper", note=note)
display(table2)
display(Markdown(f"*{note}*"))
if not in_paper:
    display(Markdown(f"FAME's Table 2 has no rows for {', '.join(P.fame_datasets)} (it covers Beauty, Sports, "
                     "Toys and ML-20m: run the `paper` profile). For reference, its SASRec, best baseline "
                     "(ICLRec) and FAME columns:"))
    display(paper_results.table2_frame()[["SASRec", "ICLRec", "FAME"]].round(4))
display(Markdown("Notes on the paper's table (docs/papers.md §2):\n"
                 + "\n".join(f"- {n}" for n in paper_results.TABLE2_NOTES)))

# %%
paper_long = pd.DataFrame([{"dataset": d, "label": label, "metric": m, "value": paper_results.paper_row(model, d)[m]}
                           for d in in_paper for label, model in paper_results.TABLE2_LABELS.items()
                           for m in ("NDCG@20", "HR@20")])
fig = plots.results_figure(fame_frame, ("NDCG@20", "HR@20"), protocol="full", paper=paper_long,
                           protocol_text=protocol_text, datasets=P.fame_datasets,
                           title="FAME and baselines: test results (FAME protocol)")
plots.save_figure(fig, FIGURES, "06_results_fame")
fig

# %% [markdown]
# ## The MOJITO table (MOJITO's protocol and full ranking)
#
# Every row trains on the same windows (`samples_step`), with the same budget, Adam β's (0.9, 0.98) and
# selection (validation NDCG@10, sampled); the ablations switch one part of MOJITO off each
# (`experiments.MOJITO_ABLATIONS`). "± std" is over training seeds; the cohort spread (the sampled protocol's 5
# draws of negatives) is in its own column. The paired comparison puts MOJITO against each row seed by seed.

# %%
from seqrec_lib import mojito_table

time_records = experiments.run_many(experiments.to_run([s for d in P.time_datasets for s in
                                                         experiments.time_specs(P, d)], P, ROOT), P, ROOT,
                                    executor=executor, address=address)
time_frame = experiments.results_frame(time_records)
SAMPLED_METRICS = ["NDCG@10", "HR@10"]
table = mojito_table.mojito_table(time_frame, SAMPLED_METRICS)
protocols = {p["key"]: p["text"] for p in time_records[0]["protocol"]["evaluation"]}
note = (f"Sampled protocol: {protocols['sampled']}. Full protocol: {protocols['full']}. Training windows: "
        f"samples_step={time_records[0]['samples_step']} for every row. Mean and sample std over seeds "
        f"{list(P.seeds)}; 'cohort std' is the mean over seeds of the std over the 5 cohorts. "
        f"Paper numbers: not available ({paper_results.MOJITO_RESULTS_REASON})")
plots.save_table(table, RESULTS, "mojito_protocol", note=note)
display(mojito_table.format_mojito_table(table))
display(Markdown(f"*{note}*"))
paired = mojito_table.paired_comparison(time_frame, "MOJITO", SAMPLED_METRICS)
plots.save_table(paired, RESULTS, "mojito_paired",
                 note="MOJITO minus each row, paired by training seed: mean and std of the difference, paired t-test "
                      "(two-sided), seeds on which MOJITO is ahead. With one seed there is no test.")
paired

# %%
fig = plots.results_figure(time_frame, SAMPLED_METRICS, protocol="sampled", protocol_text=protocols["sampled"],
                           datasets=P.time_datasets, title="The MOJITO table: test results (MOJITO protocol)")
plots.save_figure(fig, FIGURES, "06_results_mojito")
fig

# %% [markdown]
# ## Every run behind these tables

# %%
every = experiments.results_frame(head_records + expert_records + fame_records + time_records) \
    .drop_duplicates("run_id")
plots.save_table(every, RESULTS, "all_runs")
print(f"{len(every)} runs; tables and figures are in {RESULTS} and {FIGURES}")
every[["label", "dataset", "heads", "experts", "seed", "best_epoch", "seconds", "test_full_NDCG@20"]]
