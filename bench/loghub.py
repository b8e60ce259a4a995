"""Loghub-2k datasets (corrected ground truth) and the standard log-parsing accuracy metrics.

A dataset is ``<dir>/<Name>/<Name>_2k.log_structured_corrected.csv``: the ``Content`` column in
file order is the input, ``EventId`` the true group and ``EventTemplate`` the true template.

Metrics (Zhu et al. ICSE'19; Khan et al. ICSE'22; Jiang et al. ISSTA'24):

- **GA**, grouping accuracy: a message is correct when the set of messages in its predicted group
  is exactly the set in its true group; GA = correct messages / messages. True groups are the
  messages sharing a corrected ``EventTemplate`` (they coincide with ``EventId`` everywhere except
  Linux, where the correction gave E17, E18 and E19 one template, ``... user=<*>``, but left
  three ids; the corrected template is the truth).
- **PA**, parsing accuracy: a message is correct when its predicted template text equals the true
  one after :func:`normalise` (variables as ``<*>``, adjacent ``<*>`` collapsed, whitespace
  collapsed); PA = correct messages / messages.
- **FGA**, template-level F1 of grouping: precision = predicted groups that exactly equal a true
  group / predicted groups, recall = the same / true groups.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATASETS",
    "Dataset",
    "Scores",
    "load",
    "loghub_dir",
    "normalise",
    "score",
]

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Linux", "OpenSSH")

_WILD_RUN = re.compile(r"(?:<\*>)+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Dataset:
    name: str
    contents: list[str]
    event_ids: list[str]
    templates: list[str]


@dataclass(frozen=True)
class Scores:
    ga: float
    pa: float
    fga: float
    groups: int  # predicted groups
    truth_groups: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ga": round(self.ga, 4),
            "pa": round(self.pa, 4),
            "fga": round(self.fga, 4),
            "groups": self.groups,
            "truth_groups": self.truth_groups,
        }


def loghub_dir() -> Path:
    """``$LOGHUB_DIR``, else ``../shared/loghub`` relative to the repository root."""
    env = os.environ.get("LOGHUB_DIR")
    return Path(env) if env else (ROOT.parent / "shared" / "loghub").resolve()


def load(directory: Path, name: str) -> Dataset:
    path = directory / name / f"{name}_2k.log_structured_corrected.csv"
    contents: list[str] = []
    ids: list[str] = []
    templates: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            contents.append(row["Content"])
            ids.append(row["EventId"])
            templates.append(row["EventTemplate"])
    return Dataset(name, contents, ids, templates)


def normalise(template: str) -> str:
    return _WILD_RUN.sub("<*>", _SPACES.sub(" ", template).strip())


def _groups(labels: Sequence[str]) -> dict[str, frozenset[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        out[label].append(i)
    return {k: frozenset(v) for k, v in out.items()}


def score(truth: Dataset, groups: Sequence[str], templates: Sequence[str]) -> Scores:
    """Score predictions: ``groups[i]`` is message i's predicted group label, ``templates[i]``
    its predicted template text."""
    n = len(truth.contents)
    if len(groups) != n or len(templates) != n:
        raise ValueError(f"{truth.name}: {n} messages but {len(groups)}/{len(templates)} labels")
    true_sets = set(_groups([normalise(t) for t in truth.templates]).values())
    predicted = _groups(groups)
    exact = [members for members in predicted.values() if members in true_sets]
    ga = sum(len(m) for m in exact) / n
    pa = sum(normalise(p) == normalise(t) for p, t in zip(templates, truth.templates, strict=True))
    precision = len(exact) / len(predicted) if predicted else 0.0
    recall = len(exact) / len(true_sets) if true_sets else 0.0
    fga = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(ga, pa / n, fga, len(predicted), len(true_sets))
