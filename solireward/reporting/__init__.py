"""`solireward report`: the paper's tables and figures, built from `solireward evaluate` outputs.

Each metrics file carries ``tags`` (``--tag`` of ``evaluate``). Four tags are *factors* of the
study, each with its own table: ``head`` (accuracy per reward head, the paper's Table 5), ``loss``
(per loss, Table 3), ``pairing`` (cross-prompt vs in-prompt) and ``labels`` (binary vs pairwise).
A factor's table varies that factor and holds every other factor at its *reference* value: the
value given with ``--reference key=value``, else the most frequent value among the metrics files
(first seen on a tie), so a heads × losses grid plus one-factor ablations yields the intended
comparisons. Where the factor does not vary at the references (pairwise labels exist only as
in-prompt pairs), the other factors are held at the values under which it varies most, and the
caption says which. Other tags that still differ among the rows (e.g. ``task``) become leading columns.
A factor with fewer than two values there gets no table, only a note in ``README.md``. Columns
are test pair accuracy, in-prompt pair accuracy (every Pass × Fail pair of one prompt among the
scored test videos), accuracy with ties and ROC-AUC, in percent; the best value of each column
(within each group of leading columns) is bold. ``all_results`` lists every metrics file.

Replicates and uncertainty. Metrics files that differ only in the ``replicate`` tag are replicates
of one cell (trained with different seeds): a table row shows their mean. The ``95 % CI`` column is
the interval of pair accuracy that ``evaluate`` stored for a single model (``pairs.accuracy_ci``), and
for K replicates ``evaluation.replicate_interval`` (test-set and seed-to-seed variance). Each row is
compared with the reference row of its table (the factor's reference value) on the test pairs both
were evaluated on (``per_pair`` of the metrics files, same pair file): ``Δ`` is the difference of pair
accuracy in points, ``p`` the two-sided ``evaluation.paired_test``, and ``*`` marks p < 1 −
``--confidence``; ``evaluation.method_footnote()`` names the method under every table. Intervals and
tests need the per-pair records, so hand-made metrics files without them get neither.

Layout: ``README.md``; ``tables/`` (each table as .md, .tex and .html, and ``all_results.csv``);
``figures/`` (.png).

Figures (seaborn, Agg backend): ``score_histograms.png``, one panel per model with the score
distributions of its Pass and Fail videos, ``heatmap_head_loss.png``, pair accuracy per head ×
loss cell (other factors at reference), and ``learning_curves.png`` (``--training_logs``: the
``metrics.jsonl`` of each model, in the order of ``--metrics``): validation pair accuracy (the eval
rows) and training loss (a moving average over 2 % of the steps) against step, one colour per cell,
replicates as thin lines around their mean. Score files (``--scores``) are matched to metrics files by
the score path each metrics file records (``sources.scores``), otherwise by position (the n-th
score file belongs to the n-th metrics file; the counts must then be equal). A panel is titled by
the ``model`` tag when present, else by the tags that differ among the metrics files.
"""

from solireward.reporting.build import ReportConfig, build_report
from solireward.reporting.figures import match_scores
from solireward.reporting.load import load_metrics

__all__ = ["ReportConfig", "build_report", "load_metrics", "match_scores"]
