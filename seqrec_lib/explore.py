"""The case study of notebook 05 (FAME Figure 7, docs/analysis.md §2) for any dataset, number of heads H and
user: the models behind it, the figure, and a live explorer for JupyterLab.

- ``load_case_models(profile, root, dataset, heads)``: FAME with H heads on a dataset (the profile's
  single-run settings; trained once, then read back from ``root``) and the SASRec-CE checkpoint it was
  fine-tuned from, the baseline of the figure.
- ``case_figure(models, profile, user, k, facet)``: the ``analysis.CaseStudy`` and Figure 7 of one user.
- ``CaseStudyExplorer(profile, root, ...)``: ipywidgets controls (dataset, H, user) that redraw Figure 7
  and its facet table whenever one changes; display ``explorer.widget`` in a notebook. A (dataset, H) that
  has not been trained is trained when picked (it says so while it works), then kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import analysis, experiments, plots
from .data.sequences import SequenceData, SplitData
from .models.base import SequentialModel
from .profiles import SYNTHETIC, Profile

__all__ = ["CaseModels", "load_case_models", "explorer_choices", "planted_preferences", "case_figure", "CaseStudyExplorer"]


@dataclass(frozen=True)
class CaseModels:
    """FAME with ``heads`` heads on ``dataset``, its baseline and their data; ``record`` / ``pretrained``
    are the two runs' result records."""

    dataset: str
    heads: int
    fame: SequentialModel
    sasrec: SequentialModel
    data: SequenceData
    split: SplitData
    record: dict[str, Any]
    pretrained: dict[str, Any]

    def summary(self) -> str:
        test = lambda r: r["metrics"]["test"]["full"]["NDCG@20"]  # noqa: E731
        n = self.record.get("model_config", {}).get("n_experts", "?")
        return (f"FAME H={self.heads}, N={n} on {plots.dataset_title(self.dataset)}: test NDCG@20 "
                f"{test(self.record):.4f} (SASRec-CE, the checkpoint it was fine-tuned from: "
                f"{test(self.pretrained):.4f})")


def load_case_models(profile: Profile, root: str | Path, dataset: str, heads: int) -> CaseModels:
    """FAME(``heads``) on ``dataset`` with the profile's single-run settings (trained once, then read back
    from ``root``) and the SASRec-CE checkpoint FAME was fine-tuned from (docs/analysis.md §2)."""
    spec = experiments.single_run_spec(profile, "fame", dataset, n_heads=heads)
    record = experiments.run(spec, profile, root)
    fame, data, split = experiments.load_trained(record, profile)
    pretrained = experiments.run(experiments.prerequisites(spec)[0], profile, root)   # read back, never trained here
    if pretrained["run_id"] != record["pretrained"]["run_id"]:
        raise ValueError(f"FAME run {record['run_id']} was fine-tuned from {record['pretrained']['run_id']}, but its "
                         f"pretraining's record under {root} is run {pretrained['run_id']}")
    sasrec, _, _ = experiments.load_trained(pretrained, profile)
    return CaseModels(dataset, heads, fame, sasrec, data, split, record, pretrained)


def explorer_choices(profile: Profile) -> tuple[list[str], list[int]]:
    """The datasets and head counts the explorer offers: every FAME dataset and H of the profile where missing
    runs are trained (smoke, demo); else (paper) only the case studies' published FAME, whose weights ship."""
    if not profile.train_missing:
        return list(dict.fromkeys(d for d, _ in profile.case_studies)), [profile.case_study_heads]
    return (list(dict.fromkeys([profile.case_study[0], *profile.fame_datasets])),
            sorted({*profile.heads, profile.case_study_heads}))


def planted_preferences(profile: Profile, dataset: str, user: int) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """On synthetic data, what ``user`` was made to like: (the facet they follow, their weekday-daytime
    values, their evening/weekend values); (None, (), ()) on real data."""
    if dataset != SYNTHETIC or profile.synthetic is None:
        return None, (), ()
    from .data import generate_synthetic

    truth = generate_synthetic(profile.synthetic)[1]
    day, evening = truth.preferred[user - 1]
    return str(truth.dominant_facet[user - 1]), tuple(day), tuple(evening)


def case_figure(models: CaseModels, profile: Profile, user: int, k: int = 10,
                facet: str | None = None) -> tuple[analysis.CaseStudy, Figure, str | None]:
    """(the case study of ``user``, Figure 7, the facet colouring its cells). ``facet`` empty: the user's
    planted facet on synthetic data (its preferred labels coloured first), else the first facet."""
    planted, day, evening = planted_preferences(profile, models.dataset, user)
    facet = facet or planted or (sorted(models.data.item_facets)[0] if models.data.item_facets else None)
    case = analysis.case_study(models.fame, models.split, user, k=k, data=models.data, baseline=models.sasrec)
    fig = plots.case_study_figure(case, models.dataset, facet=facet,
                                  emphasis=day + evening if facet is not None and facet == planted else ())
    return case, fig, facet


class CaseStudyExplorer:
    """Figure 7, live: dropdowns for the dataset and H, a box for the user; every change redraws the figure
    and the facet table below them. Models are loaded (trained, the first time) on demand and cached."""

    def __init__(self, profile: Profile, root: str | Path, dataset: str | None = None, heads: int | None = None,
                 user: int | None = None, k: int = 10, facet: str | None = None) -> None:
        import ipywidgets as widgets

        self.profile, self.root, self.k, self.facet = profile, Path(root), k, facet or None
        default_dataset, default_user = profile.case_study
        datasets, head_counts = explorer_choices(profile)
        self.cache: dict[tuple[str, int], CaseModels] = {}
        self.case: analysis.CaseStudy | None = None
        self.figure: Figure | None = None
        style = {"description_width": "initial"}
        self.dataset = widgets.Dropdown(options=datasets, value=dataset or default_dataset, description="dataset",
                                        style=style)
        self.heads = widgets.Dropdown(options=head_counts, value=heads or profile.case_study_heads,
                                      description="heads H", style=style)
        self.user = widgets.BoundedIntText(value=user or default_user, min=1, max=10**9, description="user",
                                           style=style, layout=widgets.Layout(width="160px"))
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.widget = widgets.VBox([widgets.HBox([self.dataset, self.heads, self.user]), self.status, self.output])
        for control in (self.dataset, self.heads, self.user):
            control.observe(self._changed, names="value")
        self.redraw()

    def _changed(self, _change: dict[str, Any]) -> None:
        self.redraw()

    def models(self) -> CaseModels:
        key = (self.dataset.value, int(self.heads.value))
        if key not in self.cache:
            self.status.value = (f"<i>loading FAME H={key[1]} on {key[0]}"
                                 + (" (trained first if it has not been: seconds on demo data)" if
                                    self.profile.train_missing else "") + "…</i>")
            self.cache[key] = load_case_models(self.profile, self.root, *key)
        return self.cache[key]

    def redraw(self) -> None:
        """Draw Figure 7 for the current dataset, H and user (the user is clamped to the dataset's)."""
        from IPython.display import display

        models = self.models()
        self.user.max = models.split.n_users
        user = min(max(1, int(self.user.value)), models.split.n_users)
        self.case, self.figure, facet = case_figure(models, self.profile, user, self.k, self.facet)
        self.status.value = f"{models.summary()}; user {user} of {models.split.n_users}, cells coloured by {facet}"
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure, analysis.facet_table(self.case))
