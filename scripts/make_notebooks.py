#!/usr/bin/env python
"""Generate the notebooks in ``notebooks/`` from the cell sources below, clean: no outputs, no execution
counts, no papermill metadata, one cell tagged ``parameters``, stable cell ids.

    python scripts/make_notebooks.py          # (re)write notebooks/*.ipynb
    python scripts/make_notebooks.py --check  # exit 1 if a committed notebook differs from its source here

Edit the notebooks here, not in Jupyter, so that they stay thin and reviewable.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> tuple[str, str]:
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", textwrap.dedent(text).strip("\n"))


def params(text: str) -> tuple[str, str]:
    return ("parameters", textwrap.dedent(text).strip("\n"))


COMMON_PARAMETERS = '''
profile = "demo"          # smoke | demo | paper (seqrec_lib/profiles.py)
outputs = "../outputs"    # figures, results and runs go to <outputs>/<profile>/
'''

SETUP = code('''
%matplotlib inline
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
''')

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

# ------------------------------------------------------------------------------------------------ 00_data
NOTEBOOKS["00_data"] = [
    md('''
    # 00 · The data

    Every experiment starts from **per-user chronological sequences** and the **leave-one-out split** of
    FAME (fame.md §2.4): for a user with sequence *s*, the model trains on `s[:-3]` with a target at every
    position, is validated on predicting `s[-2]` from `s[:-2]`, and tested on predicting `s[-1]` from
    `s[:-1]`.

    This notebook prepares every dataset of the chosen profile (downloading and checking raw files when
    needed), prints their statistics beside the FAME paper's Table 1, and plots how long the sequences are.
    '''),
    params(COMMON_PARAMETERS),
    SETUP,
    md('''
    ## Statistics of the profile's datasets

    `load_split` loads a dataset (cached after the first time) and builds its split. The `demo` and
    `smoke` profiles use the **synthetic** dataset: generated offline, with item facets (genre, creator)
    and time-of-day effects planted on purpose, so we know what the models *should* find.
    '''),
    code('''
    data = {name: experiments.load_split(name, P)[0] for name in P.datasets}
    stats = pd.DataFrame.from_records([{"dataset": name, **d.statistics()} for name, d in data.items()],
                                      index="dataset")
    stats["facets"] = [", ".join(d.item_facets) or "-" for d in data.values()]
    stats["timestamps"] = [d.timestamps is not None for d in data.values()]
    plots.save_table(stats, RESULTS, "dataset_statistics",
                     note="Measured after preprocessing; density = interactions / (users × items).")
    stats
    '''),
    md('''
    ## Beside the FAME paper's Table 1

    The Amazon files are exactly the S3-Rec/ICLRec files, so our counts should match the paper. They do,
    except for **typos in Table 1** (fame.md §2.2): Sports has 35,598 users (printed 25,598), Toys has
    11,924 items (printed 19,392, which also makes its printed density wrong), and the ML-20m action count
    is printed "185,6746". The `flag` column marks them; the `ours` columns are filled for the datasets of
    this profile.
    '''),
    code('''
    from seqrec_lib import paper_results

    table1 = paper_results.table1_frame()
    ours = stats[["users", "items", "interactions"]].rename(columns=lambda c: f"ours_{c}")
    comparison = table1.join(ours, on="our_dataset")[
        ["dataset", "printed_users", "users", "ours_users", "printed_items", "items", "ours_items",
         "printed_actions_text", "actions", "ours_interactions", "printed_density", "density", "flagged", "note"]]
    plots.save_table(comparison.set_index("dataset"), RESULTS, "table1_comparison",
                     note="printed_*: FAME (WSDM 2025) Table 1 as printed; users/items/actions/density: measured on "
                          "the S3-Rec files (fame.md §2.2); ours_*: this profile's data. flagged: printed typos.")
    comparison
    '''),
    md('''
    ## How long are the sequences?

    Most users have few interactions, a few have very many. Models read at most `max_len` items (the most
    recent ones); the dotted line shows how many users are truncated.
    '''),
    code('''
    fig = plots.length_distribution_figure({name: d.lengths for name, d in data.items()}, max_len=P.max_len)
    plots.save_figure(fig, FIGURES, "00_sequence_lengths")
    fig
    '''),
    md('''
    ## What the split gives each model

    One training sample per user (all positions at once) for SASRec and FAME; MOJITO trains on sliding
    windows of the sequence instead (`samples_step`, mojito.md §1.4), which gives more, shorter samples.
    '''),
    code('''
    rows = {}
    for name in P.datasets:
        for kind, step in (("all positions", None), (f"MOJITO windows (step {P.mojito_samples_step})",
                                                     P.mojito_samples_step)):
            _, split = experiments.load_split(name, P, step)
            rows[(name, kind)] = {"training samples": len(split.train),
                                  "training targets": int((split.train.targets > 0).sum()),
                                  "valid users": len(split.valid), "test users": len(split.test)}
    pd.DataFrame(rows).T
    '''),
]

# ------------------------------------------------------------------------------------------------ 01_train
NOTEBOOKS["01_train"] = [
    md('''
    # 01 · Train one model

    One model on one dataset, end to end: the run's configuration, training with early stopping on the
    validation metric, the learning curves, and the JSON record every run writes (configs, protocol,
    metrics, epoch log, timings, versions, git commit, device).

    `run_all.sh` runs this notebook three times, with `model` = `sasrec`, `fame` and `mojito`. FAME is
    trained in two stages (fame.md §5.7): first SASRec-CE with the same number of heads, then FAME is built
    from that checkpoint and fine-tuned. A run that has finished before is read back, not retrained.
    '''),
    params(COMMON_PARAMETERS + '''model = "sasrec"          # sasrec | fame | mojito | pop
dataset = ""              # empty: the first FAME dataset of the profile (MOJITO: its first dataset with timestamps)
overrides = {}            # model or training settings, e.g. {"n_heads": 4, "epochs": 5, "lr": 0.001}
'''),
    SETUP,
    md('''
    ## The run

    `single_run_spec` takes the profile's settings for this model; `overrides` changes any model or
    training field. The first evaluation protocol selects the checkpoint.
    '''),
    code('''
    import dataclasses
    import json

    if not dataset:
        dataset = (P.time_datasets if model == "mojito" else P.fame_datasets)[0]
    spec = experiments.single_run_spec(P, model, dataset, **overrides)
    display(Markdown(f"**{spec.label}** on **{dataset}**, seed {spec.seed}"))
    pd.DataFrame({"model": pd.Series(dataclasses.asdict(spec.model_config), dtype=str),
                  "training": pd.Series(dataclasses.asdict(spec.train_config), dtype=str)}).fillna("")
    '''),
    code('''
    record = experiments.run(spec, P, ROOT)
    print(f"{record['label']}: best epoch {record['best_epoch']} of {record['epochs_run']}, "
          f"{record['timings']['total_seconds']:.1f} s, run folder {record['run_dir']}")
    '''),
    md('''
    ## Learning curves

    Left: the training loss per epoch. Right: the validation metric that selects the checkpoint (solid) and
    HR (dashed). Training stops when the validation metric has not improved for `patience` epochs, and the
    best epoch's weights are tested.
    '''),
    code('''
    selection = record["protocol"]["evaluation"][0]
    metric = spec.train_config.select_metric
    fig = plots.learning_curves_figure(record["epoch_log"], record["label"], dataset, metric=metric,
                                       protocol=selection["text"],
                                       extra_metrics=(metric.replace("NDCG", "HR"),))
    plots.save_figure(fig, FIGURES, f"01_learning_curves_{model}_{dataset}")
    fig
    '''),
    md('''
    ## Metrics of the best checkpoint

    One row per split and protocol. `full` ranks the held-out item among all items (history masked);
    `sampled` is MOJITO's protocol (the target among 100 sampled negatives, mean over 5 user cohorts).
    '''),
    code('''
    metrics = pd.DataFrame({(which, key): values for which, by_key in record["metrics"].items()
                            for key, values in by_key.items()}).T
    display(metrics[[c for c in metrics.columns if not c.endswith("_std")]].round(4))
    for protocol in record["protocol"]["evaluation"]:
        print(f"{protocol['key']}: {protocol['text']}")
    '''),
    md('''
    ## The result record

    The whole record is written to the run folder (`result.json`) and copied to the results folder. Here
    it is with the epoch log shortened.
    '''),
    code('''
    from seqrec_lib.records import write_json_atomic

    write_json_atomic(RESULTS / f"01_train_{model}_{dataset}.json", record)
    shown = dict(record, epoch_log=record["epoch_log"][:2] + ([" ... "] if len(record["epoch_log"]) > 3 else [])
                 + record["epoch_log"][-1:])
    print(json.dumps(shown, indent=1, default=str, ensure_ascii=False))
    '''),
]

# ------------------------------------------------------------------------------------------------ 02_head_sweep
NOTEBOOKS["02_head_sweep"] = [
    md('''
    # 02 · How many heads? (FAME Figure 5)

    FAME's first idea is to let **each attention head predict on its own** and to mix the heads' predictions
    with a learned gate, instead of concatenating the heads into one representation. *FAME w/o MoE* is
    exactly that, without the mixture of experts (fame.md §5.6).

    For every H in the profile we train SASRec-CE with H heads, then fine-tune FAME w/o MoE from it. The
    paper's claims (fame.md §9.1): both improve over H = 1 at some H > 1; FAME w/o MoE ≥ SASRec at every H;
    at H = 1 the two are (nearly) the same.
    '''),
    params(COMMON_PARAMETERS + '''workers = 1               # runs trained at once (more only helps with spare cores or a GPU)
'''),
    SETUP,
    code('''
    specs = [spec for dataset in P.fame_datasets for spec in experiments.head_sweep_specs(P, dataset)]
    records = experiments.run_many(specs, P, ROOT, workers=workers)
    frame = experiments.results_frame(records)
    best = {dataset: experiments.best_heads(records, dataset) for dataset in P.fame_datasets}
    protocol_text = records[0]["protocol"]["evaluation"][0]["text"]
    print("H* (best validation NDCG@20 of FAME w/o MoE):", best)
    '''),
    md('''
    ## The runs

    Test NDCG@20 and HR@20 per H; `valid` is the validation NDCG@20 that chooses H*.
    '''),
    code('''
    columns = {"valid_full_NDCG@20": "valid NDCG@20", "test_full_NDCG@20": "test NDCG@20",
               "test_full_HR@20": "test HR@20"}
    table = frame.groupby(["dataset", "heads", "label"])[list(columns)].mean().rename(columns=columns)
    plots.save_table(table, RESULTS, "head_sweep", note=f"Protocol: {protocol_text}. H* = {best}.")
    plots.save_table(pd.DataFrame({"dataset": list(best), "best_heads": list(best.values())}), RESULTS, "best_heads")
    table.unstack("label")
    '''),
    md('''
    ## Figure 5

    Top row NDCG@20, bottom row HR@20, one column per dataset; the grey band marks H* chosen on validation.
    '''),
    code('''
    fig = plots.head_sweep_figure(frame, datasets=P.fame_datasets, protocol_text=protocol_text, best_heads=best)
    plots.save_figure(fig, FIGURES, "fig5_head_sweep")
    fig
    '''),
    md('''
    ## Do the paper's claims hold here?

    A small profile trains few epochs on small data, so read these as a check of the pipeline more than of
    the paper; the `paper` profile is the real test.
    '''),
    code('''
    wide = frame.pivot_table(index=["dataset", "heads"], columns="label", values="test_full_NDCG@20")
    gap = wide["FAME w/o MoE"] - wide["SASRec-CE"]
    claims = pd.DataFrame({
        "FAME w/o MoE ≥ SASRec at every H": gap.groupby("dataset").apply(lambda g: bool((g >= 0).all())),
        "some H > 1 beats H = 1 (FAME w/o MoE)": wide["FAME w/o MoE"].groupby("dataset").apply(
            lambda g: bool(g.droplevel(0).loc[lambda s: s.index > 1].max() > g.droplevel(0).get(1, float("inf")))),
        "H*": pd.Series(best),
    })
    claims
    '''),
]

# ------------------------------------------------------------------------------------------------ 03_expert_sweep
NOTEBOOKS["03_expert_sweep"] = [
    md('''
    # 03 · How many experts? (FAME Figure 6)

    FAME's second idea: in the last attention layer, each head gets **N query experts** and a router that
    mixes them per position (fame.md §5.1), so a head can attend for several "preferences" within its facet.

    H is fixed at H*, the head count chosen on validation in `02_head_sweep`; the red line is FAME w/o MoE
    at H* (N = 1). The paper's claim (fame.md §9.2): some N lies above the red line on every dataset.
    '''),
    params(COMMON_PARAMETERS + '''workers = 1               # runs trained at once
'''),
    SETUP,
    code('''
    head_specs = [spec for dataset in P.fame_datasets for spec in experiments.head_sweep_specs(P, dataset)]
    head_records = experiments.run_many(head_specs, P, ROOT, workers=workers)   # read back from 02
    heads = {dataset: experiments.best_heads(head_records, dataset) for dataset in P.fame_datasets}
    specs = [spec for dataset in P.fame_datasets for spec in experiments.expert_sweep_specs(P, dataset, heads[dataset])]
    records = experiments.run_many(specs, P, ROOT, workers=workers)
    frame = experiments.results_frame(records)
    experts = {dataset: experiments.best_experts(records, dataset, heads[dataset]) for dataset in P.fame_datasets}
    protocol_text = records[0]["protocol"]["evaluation"][0]["text"]
    print("H*:", heads, " N* (best validation NDCG@20 of FAME at H*):", experts)
    '''),
    md('''
    ## The reference line: FAME w/o MoE at H*
    '''),
    code('''
    head_frame = experiments.results_frame(head_records)
    metrics = ("NDCG@20", "HR@20")
    no_moe = head_frame[head_frame["label"] == "FAME w/o MoE"]
    reference = {dataset: {m: float(no_moe[(no_moe["dataset"] == dataset) & (no_moe["heads"] == h)]
                                    [f"test_full_{m}"].mean()) for m in metrics}
                 for dataset, h in heads.items()}
    pd.DataFrame(reference).T.rename(columns=lambda m: f"FAME w/o MoE test {m}")
    '''),
    md('''
    ## The runs and Figure 6
    '''),
    code('''
    columns = {"valid_full_NDCG@20": "valid NDCG@20", "test_full_NDCG@20": "test NDCG@20",
               "test_full_HR@20": "test HR@20"}
    table = frame.groupby(["dataset", "heads", "experts"])[list(columns)].mean().rename(columns=columns)
    plots.save_table(table, RESULTS, "expert_sweep",
                     note=f"Protocol: {protocol_text}. H* = {heads}; N* = {experts}; FAME w/o MoE at H*: {reference}.")
    table
    '''),
    code('''
    fig = plots.expert_sweep_figure(frame, reference, heads=heads, datasets=P.fame_datasets,
                                    protocol_text=protocol_text, best_experts=experts)
    plots.save_figure(fig, FIGURES, "fig6_expert_sweep")
    fig
    '''),
    code('''
    above = {dataset: bool((frame[frame["dataset"] == dataset].groupby("experts")["test_full_NDCG@20"].mean()
                            > reference[dataset]["NDCG@20"]).any()) for dataset in P.fame_datasets}
    pd.Series(above, name="some N above the red line (NDCG@20)")
    '''),
]

# ------------------------------------------------------------------------------------------------ 04_head_diversity
NOTEBOOKS["04_head_diversity"] = [
    md('''
    # 04 · Do the heads look at different things?

    If several heads attend in the same way, they are redundant. Our protocol (mojito.md §6): for each test
    user and each attention layer, take every pair of heads and measure how far apart their attention maps
    are (Frobenius distance, restricted to the user's real positions), and the same for the heads' outputs;
    average over head pairs, then over users, with a bootstrap 95% interval.

    We compare **SASRec-CE, FAME and MOJITO at the same H** on the same users. Attention distances compare
    across models; a scale-free version divides by √(2·n_u) so it lies in [0, 1]. Output distances live on
    different scales per model (FAME's are layer-normalised), so read them within a model.
    '''),
    params(COMMON_PARAMETERS + '''dataset = ""              # empty: the profile's first dataset with timestamps (MOJITO needs them)
n_boot = 2000             # bootstrap resamples
'''),
    SETUP,
    md('''
    ## The three models

    The same runs as `01_train` (read back if they exist), on a dataset with timestamps.
    '''),
    code('''
    dataset = dataset or P.time_datasets[0]
    records = {}
    for model in ("sasrec", "fame", "mojito"):
        record = experiments.run(experiments.single_run_spec(P, model, dataset), P, ROOT)
        records[record["label"]] = record
    models = {label: experiments.load_trained(record, P) for label, record in records.items()}
    pd.DataFrame.from_dict({label: {"heads": r["model_config"]["n_heads"], "layers": r["model_config"]["n_blocks"],
                                    "test NDCG@10 (full)": r["metrics"]["test"]["full"]["NDCG@10"]}
                            for label, r in records.items()}, orient="index")
    '''),
    code('''
    from seqrec_lib import analysis

    tables = []
    for label, (model, _, split) in models.items():
        table = analysis.head_diversity(model, split, "test", seed=0, n_boot=n_boot)
        tables.append(table.assign(label=label))
    diversity = pd.concat(tables, ignore_index=True)[["label", "layer", "quantity", "mean", "ci_low", "ci_high",
                                                       "n_users", "n_heads"]]
    plots.save_table(diversity.set_index(["label", "layer", "quantity"]), RESULTS, f"head_diversity_{dataset}",
                     note="Mean pairwise distance between heads per user and layer, averaged over test users; "
                          f"95% percentile-bootstrap interval ({n_boot} resamples, seed 0); mojito.md §6.")
    diversity.pivot_table(index=["label", "layer"], columns="quantity", values="mean").round(3)
    '''),
    md('''
    ## The figure

    Bars are means over users, whiskers the bootstrap 95% interval. FAME's last layer is its MoE layer: its
    "attention" is each head's expert mixture, its "output" the per-head representation F^(h) that the head
    predicts from.
    '''),
    code('''
    fig = plots.head_diversity_figure(diversity, dataset)
    plots.save_figure(fig, FIGURES, f"04_head_diversity_{dataset}")
    fig
    '''),
    md('''
    ## Is the difference real? Paired bootstrap on the same users

    Attention distance of FAME and of MOJITO minus SASRec's, per layer, with users resampled jointly.
    An interval that excludes 0 means the difference is not an accident of which users we drew.
    '''),
    code('''
    distances = {label: analysis.per_user_head_distances(model, split, "test", seed=0)
                 for label, (model, _, split) in models.items()}
    paired = pd.concat([analysis.compare_head_diversity(distances[label], distances["SASRec-CE"], "attention",
                                                        n_boot=n_boot).assign(comparison=f"{label} − SASRec-CE")
                        for label in ("FAME", "MOJITO")], ignore_index=True)
    paired.set_index(["comparison", "layer"]).round(4)
    '''),
    md('''
    ## Sensitivity: MOJITO without its evaluation-time attention noise

    MOJITO adds noise to its attention logits even when scoring (mojito.md §2.4). Turning it off (same
    weights) shows how much of its head diversity comes from the noise.
    '''),
    code('''
    import dataclasses

    from seqrec_lib.models.registry import build_model

    mojito, _, mojito_split = models["MOJITO"]
    quiet = build_model("mojito", mojito_split, dataclasses.replace(mojito.config, attn_noise_at_eval=False)) \\
        if hasattr(mojito, "config") else None
    if quiet is not None:
        quiet.load_state_dict(mojito.state_dict())
        noise_off = analysis.head_diversity(quiet.eval(), mojito_split, "test", seed=0, n_boot=n_boot)
        noise = pd.concat({"noise on": diversity[diversity["label"] == "MOJITO"].set_index(["layer", "quantity"])["mean"],
                           "noise off": noise_off.set_index(["layer", "quantity"])["mean"]}, axis=1)
        display(noise.assign(difference=noise["noise on"] - noise["noise off"]).round(5))
    else:
        print("this MOJITO model does not expose its config; skipped")
    '''),
]

# ------------------------------------------------------------------------------------------------ 05_case_study
NOTEBOOKS["05_case_study"] = [
    md('''
    # 05 · One user, head by head (FAME Figure 7)

    FAME gives every head its own top-k list, and a gate decides how much each head counts for this user
    (fame.md §5.4). The paper shows Sports user 230 with H = 2: one head's list contains the ground truth,
    the gate trusts that head more (0.82 vs 0.18), and the combined list finds the item that plain SASRec
    misses (fame.md §9.3).

    Here we draw the same picture for the profile's default user: the history, each head's top-10 with its
    gate weight and the target's rank, the combined list and SASRec's. Cells are coloured by an item facet
    (synthetic data: the planted genre or creator; MovieLens: genres; Amazon: brand/category attributes),
    so you can see which facet each head follows.

    Run it in Jupyter with `interactive = True` to pick any user.
    '''),
    params(COMMON_PARAMETERS + '''dataset = ""              # empty: the profile's case-study dataset
user = 0                  # 0: the case-study user of the profile (paper profile: Sports user 230)
k = 10                    # length of the lists
facet = ""                # facet that colours the cells; empty: the user's planted facet (synthetic) or the first one
interactive = False       # True in Jupyter: an explorer to pick any user (run_all keeps it False)
'''),
    SETUP,
    code('''
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
    '''),
    md('''
    ## What this user is known to like

    On synthetic data we know the truth: every user follows one facet (genre or creator) with a few
    preferred values, one half on weekday daytime and one half in evenings and weekends.
    '''),
    code('''
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
    '''),
    md('''
    ## Figure 7
    '''),
    code('''
    case = analysis.case_study(fame, split, user, k=k, data=data, baseline=sasrec)
    fig = plots.case_study_figure(case, dataset, facet=facet, emphasis=preferred if facet == planted else ())
    plots.save_figure(fig, FIGURES, f"fig7_case_study_{dataset}_user{user}")
    fig
    '''),
    md('''
    Each list's dominant facet label and the share of its items carrying it (`*_top`, `*_share`), the
    gate weight and the target's 0-based rank:
    '''),
    code('''
    facets = analysis.facet_table(case)
    plots.save_table(facets, RESULTS, f"case_study_{dataset}_user{user}",
                     note="Full ranking, history other than the target excluded; target_rank is 0-based.")
    facets
    '''),
    md('''
    ## Over all users: does each head follow a facet?

    For every test user, the share of each head's top-k items that carry the user's most frequent label
    of a facet, against the share a random list would have (chance). A head clearly above chance follows
    that facet.
    '''),
    code('''
    for name in data.item_facets:
        alignment = analysis.head_facet_alignment(fame, split, data.item_facets, name, k=k)
        plots.save_table(alignment, RESULTS, f"facet_alignment_{dataset}_{name}")
        fig = plots.facet_alignment_figure(alignment, dataset, name)
        plots.save_figure(fig, FIGURES, f"05_facet_alignment_{dataset}_{name}")
        display(fig)
    '''),
    md('''
    ## Explore any user

    With `interactive = True` (in Jupyter) pick a user; headless runs (papermill, `run_all.sh`) skip this.
    '''),
    code('''
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
    '''),
]

# ------------------------------------------------------------------------------------------------ 06_results
NOTEBOOKS["06_results"] = [
    md('''
    # 06 · Results beside the papers'

    The final rows: for every FAME dataset, **SASRec-CE(H\\*), FAME w/o MoE(H\\*) and FAME(H\\*, N\\*)**
    over the profile's seeds (H\\* and N\\* chosen on validation in `02` and `03`), plus the most-popular
    baseline, next to FAME's Table 2; and **MOJITO vs SASRec-BCE** under MOJITO's sampled protocol.

    How to read them (fame.md §8, mojito.md §5): the paper's SASRec row is much weaker than a CE-trained
    SASRec, so compare FAME with *our* SASRec-CE; MOJITO's own table was not available to us, so its
    acceptance is relative to SASRec-BCE under the same protocol. The protocol is written under each table.
    '''),
    params(COMMON_PARAMETERS + '''workers = 1               # runs trained at once
'''),
    SETUP,
    code('''
    from seqrec_lib import paper_results

    FULL_METRICS = ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20"]
    head_records = experiments.run_many([s for d in P.fame_datasets for s in experiments.head_sweep_specs(P, d)],
                                        P, ROOT, workers=workers)
    heads = {d: experiments.best_heads(head_records, d) for d in P.fame_datasets}
    expert_records = experiments.run_many([s for d in P.fame_datasets
                                           for s in experiments.expert_sweep_specs(P, d, heads[d])], P, ROOT,
                                          workers=workers)
    experts = {d: experiments.best_experts(expert_records, d, heads[d]) for d in P.fame_datasets}
    specs = [s for d in P.fame_datasets
             for s in experiments.table_specs(P, d, heads[d], experts[d]) + [experiments.pop_spec(P, d, P.seeds[0])]]
    fame_records = experiments.run_many(specs, P, ROOT, workers=workers)
    fame_frame = experiments.results_frame(fame_records)
    print("H*:", heads, " N*:", experts, " seeds:", P.seeds)
    '''),
    md('''
    ## FAME: our runs (mean ± std over seeds) and the paper's Table 2
    '''),
    code('''
    summary = experiments.summary_table(fame_frame, FULL_METRICS, protocol="full")
    ours = experiments.format_summary(summary, FULL_METRICS).assign(source="ours")
    in_paper = [d for d in P.fame_datasets if d in paper_results.PAPER_DATASETS]
    paper_rows = [pd.Series({m: f"{paper_results.paper_row(model, d)[m]:.4f}" for m in FULL_METRICS},
                            name=(d, f"{model} (paper)"))
                  for d in in_paper for model in ("SASRec", "ICLRec", "FAME")]
    table2 = pd.concat([ours, pd.DataFrame(paper_rows).assign(source="FAME Table 2")]) if paper_rows else ours
    protocol_text = fame_records[0]["protocol"]["evaluation"][0]["text"]
    note = (f"Protocol: {protocol_text}. Leave-one-out split; checkpoint chosen on validation NDCG@20. "
            f"H* = {heads}, N* = {experts}; mean ± sample std over seeds {list(P.seeds)}.")
    plots.save_table(summary, RESULTS, "table2_fame", note=note)
    plots.save_table(table2, RESULTS, "table2_fame_beside_paper", note=note)
    display(table2)
    display(Markdown(f"*{note}*"))
    if not in_paper:
        display(Markdown(f"FAME's Table 2 has no rows for {', '.join(P.fame_datasets)} (it covers Beauty, Sports, "
                         "Toys and ML-20m: run the `paper` profile). For reference, its SASRec, best baseline "
                         "(ICLRec) and FAME columns:"))
        display(paper_results.table2_frame()[["SASRec", "ICLRec", "FAME"]].round(4))
    display(Markdown("Notes on the paper's table (fame.md §8):\\n" + "\\n".join(f"- {n}" for n in paper_results.TABLE2_NOTES)))
    '''),
    code('''
    paper_long = pd.DataFrame([{"dataset": d, "label": label, "metric": m, "value": paper_results.paper_row(model, d)[m]}
                               for d in in_paper for label, model in (("SASRec-CE", "SASRec"), ("FAME", "FAME"))
                               for m in ("NDCG@20", "HR@20")])
    fig = plots.results_figure(fame_frame, ("NDCG@20", "HR@20"), protocol="full", paper=paper_long,
                               protocol_text=protocol_text, datasets=P.fame_datasets,
                               title="FAME and baselines: test results (FAME protocol)")
    plots.save_figure(fig, FIGURES, "06_results_fame")
    fig
    '''),
    md('''
    ## MOJITO vs SASRec-BCE (MOJITO's protocol)
    '''),
    code('''
    time_records = experiments.run_many([s for d in P.time_datasets for s in experiments.time_specs(P, d)], P, ROOT,
                                        workers=workers)
    time_frame = experiments.results_frame(time_records)
    SAMPLED_METRICS = ["NDCG@10", "HR@10"]
    sampled = experiments.summary_table(time_frame, SAMPLED_METRICS, protocol="sampled")
    full = experiments.summary_table(time_frame, SAMPLED_METRICS, protocol="full")
    mojito_table = pd.concat({"sampled": sampled[SAMPLED_METRICS + [f"{m}_cohort_std" for m in SAMPLED_METRICS]],
                              "full": full[SAMPLED_METRICS]}, axis=1)
    protocols = {p["key"]: p["text"] for p in time_records[0]["protocol"]["evaluation"]}
    note = (f"Sampled protocol: {protocols['sampled']}. Full protocol: {protocols['full']}. "
            f"Mean over seeds {list(P.seeds)}; *_cohort_std is the std over the 5 cohorts. "
            f"Paper numbers: not available ({paper_results.MOJITO_RESULTS_REASON})")
    plots.save_table(mojito_table, RESULTS, "mojito_protocol", note=note)
    display(mojito_table)
    display(Markdown(f"*{note}*"))
    '''),
    code('''
    fig = plots.results_figure(time_frame, SAMPLED_METRICS, protocol="sampled", protocol_text=protocols["sampled"],
                               datasets=P.time_datasets, title="MOJITO vs SASRec-BCE: test results (MOJITO protocol)")
    plots.save_figure(fig, FIGURES, "06_results_mojito")
    fig
    '''),
    md('''
    ## Every run behind these tables
    '''),
    code('''
    every = experiments.results_frame(head_records + expert_records + fame_records + time_records) \\
        .drop_duplicates("run_id")
    plots.save_table(every, RESULTS, "all_runs")
    print(f"{len(every)} runs; tables and figures are in {RESULTS} and {FIGURES}")
    every[["label", "dataset", "heads", "experts", "seed", "best_epoch", "seconds", "test_full_NDCG@20"]]
    '''),
]


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, (kind, source) in enumerate(cells):
        cell_id = f"{name.replace('_', '-')}-{i:02d}"
        if kind == "markdown":
            cell = new_markdown_cell(source, id=cell_id)
        else:
            cell = new_code_cell(source, id=cell_id)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report notebooks that differ; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        text = nbformat.writes(build(name, cells)) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            NOTEBOOK_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    extra = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb") if p.stem not in NOTEBOOKS)
    if args.check and (stale or extra):
        print(f"out of date: {stale}; not generated here: {extra}. Run: python scripts/make_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
