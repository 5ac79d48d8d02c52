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
# # 01 · Train one model
#
# One model on one dataset, end to end: the run's configuration, training with early stopping on the
# validation metric, the learning curves, and the JSON record every run writes (configs, protocol,
# metrics, epoch log, timings, versions, git commit, device).
#
# `run_all.sh` runs this notebook three times, with `model` = `sasrec`, `fame` and `mojito`. FAME is
# trained in two stages (docs/fame.md §8): first SASRec-CE with the same number of heads, then FAME is built
# from that checkpoint and fine-tuned. Any registered model trains by name, the baselines included (`gru4rec`,
# `bert4rec`, `tisasrec`, `cl4srec`: docs/baselines.md). A run that has finished before is read back, not
# retrained.
#
# > **What these numbers are.** With `profile = "demo"` (the default, and what `./run_all.sh` runs) this is a
# > fast offline check that the pipeline works end to end, on small synthetic data with budgets of a few
# > epochs. Its numbers do not test the papers' claims: runs stop before they converge, and at this size a
# > plain SASRec is hard to beat (docs/protocol.md §7). Real-data results come from `profile = "paper"` and
# > are published in `outputs/paper/`.

# %% tags=["parameters"]
profile = "demo"          # smoke: a look in seconds | demo: minutes | paper: the published runs, read back
outputs = "../out"        # figures, results and runs go to <outputs>/<profile>/ (../outputs: published)
model = "sasrec"          # sasrec | fame | mojito | pop | gru4rec | bert4rec | tisasrec | cl4srec
dataset = ""              # empty: the profile's first FAME dataset (MOJITO, TiSASRec: its first with timestamps)
overrides = {}            # model or training settings, e.g. {"n_heads": 4, "epochs": 5, "lr": 0.001}

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
# ## The run
#
# `single_run_spec` takes the profile's settings for this model; `overrides` changes any model or
# training field. The first evaluation protocol selects the checkpoint.

# %%
import dataclasses
import json

if not dataset:
    dataset = experiments.default_dataset(P, model)
spec = experiments.single_run_spec(P, model, dataset, **overrides)
display(Markdown(f"**{spec.label}** on **{dataset}**, seed {spec.seed}"))
pd.DataFrame({"model": pd.Series(dataclasses.asdict(spec.model_config), dtype=str),
              "training": pd.Series(dataclasses.asdict(spec.train_config), dtype=str)}).fillna("")

# %%
record = experiments.run(spec, P, ROOT)
print(f"{record['label']}: best epoch {record['best_epoch']} of {record['epochs_run']}, "
      f"{record['timings']['total_seconds']:.1f} s, run folder {record['run_dir']}")

# %% [markdown]
# ## Learning curves
#
# Left: the training loss per epoch. Right: the validation metric that selects the checkpoint (solid) and
# HR (dashed). Training stops when the validation metric has not improved for `patience` epochs, and the
# best epoch's weights are tested.

# %%
selection = record["protocol"]["evaluation"][0]
metric = spec.train_config.select_metric
fig = plots.learning_curves_figure(record["epoch_log"], record["label"], dataset, metric=metric,
                                   protocol=selection["text"],
                                   extra_metrics=(metric.replace("NDCG", "HR"),))
plots.save_figure(fig, FIGURES, f"01_learning_curves_{model}_{dataset}")
fig

# %% [markdown]
# ## Metrics of the best checkpoint
#
# One row per split and protocol. `full` ranks the held-out item among all items (history masked);
# `sampled` is MOJITO's protocol (the target among 100 sampled negatives, mean over 5 user cohorts).

# %%
metrics = pd.DataFrame({(which, key): values for which, by_key in record["metrics"].items()
                        for key, values in by_key.items()}).T
display(metrics[[c for c in metrics.columns if not c.endswith("_std")]].round(4))
for protocol in record["protocol"]["evaluation"]:
    print(f"{protocol['key']}: {protocol['text']}")

# %% [markdown]
# ## The result record
#
# The whole record is written to the run folder (`result.json`) and copied to the results folder. Here
# it is with the epoch log shortened.

# %%
from seqrec_lib.records import write_json_atomic

write_json_atomic(RESULTS / f"01_train_{model}_{dataset}.json", record)
shown = dict(record, epoch_log=record["epoch_log"][:2] + ([" ... "] if len(record["epoch_log"]) > 3 else [])
             + record["epoch_log"][-1:])
print(json.dumps(shown, indent=1, default=str, ensure_ascii=False))
