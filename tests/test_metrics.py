"""Behaviour of rtrec_native.metrics: hand-computed cases and scikit-learn agreement."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from rtrec_native import metrics

# --------------------------------------------------------------------------- pointwise


def test_rmse_and_mae_match_hand_computation():
    y_true = [1.0, 2.0, 3.0]
    y_pred = [1.0, 3.0, 5.0]  # errors 0, 1, 2
    assert metrics.rmse(y_true, y_pred) == pytest.approx(math.sqrt(5 / 3))
    assert metrics.mae(y_true, y_pred) == pytest.approx(1.0)


def test_perfect_predictions_have_zero_error():
    y = np.array([0.5, 4.0, -2.0])
    assert metrics.rmse(y, y) == 0.0
    assert metrics.mae(y, y) == 0.0


def test_accuracy_thresholds_probabilities_at_one_half_inclusive():
    y_true = [1, 0, 1, 0]
    y_prob = [0.5, 0.49, 0.2, 0.9]  # predicted 1, 0, 0, 1 -> right, right, wrong, wrong
    assert metrics.accuracy(y_true, y_prob) == pytest.approx(0.5)
    assert metrics.accuracy(y_true, y_prob, threshold=0.1) == pytest.approx(0.5)
    assert metrics.accuracy([1, 0], [0.95, 0.05]) == 1.0


def test_auc_hand_cases():
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    # Pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3 of 4
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_counts_a_tied_positive_negative_pair_as_one_half():
    assert metrics.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    # pos 0.7 vs negs {0.7 tie, 0.1 win} -> 1.5 of 2
    assert metrics.auc([1, 0, 0], [0.7, 0.7, 0.1]) == pytest.approx(0.75)


def test_auc_is_nan_when_only_one_class_is_present():
    assert math.isnan(metrics.auc([1, 1, 1], [0.1, 0.5, 0.9]))


def test_auc_agrees_with_sklearn_including_ties():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=2000)
    scores = np.round(rng.normal(size=2000) + y, 1)  # rounding creates many ties
    assert metrics.auc(y, scores) == pytest.approx(sklearn_metrics.roc_auc_score(y, scores))


def test_log_loss_hand_case_and_clipping():
    assert metrics.log_loss([1, 0], [0.8, 0.3]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    # A certain wrong answer costs -log(eps), finite.
    assert metrics.log_loss([1], [0.0], eps=1e-15) == pytest.approx(-math.log(1e-15))
    assert math.isfinite(metrics.log_loss([0], [1.0]))


def test_log_loss_agrees_with_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=1000)
    p = rng.uniform(0.01, 0.99, size=1000)
    assert metrics.log_loss(y, p) == pytest.approx(sklearn_metrics.log_loss(y, p))


@pytest.mark.parametrize(
    "func", [metrics.rmse, metrics.mae, metrics.accuracy, metrics.auc, metrics.log_loss]
)
def test_pointwise_metrics_reject_mismatched_lengths_and_empty_input(func):
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        func([1, 0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="empty"):
        func([], [])


def test_pointwise_metrics_reject_non_finite_predictions():
    with pytest.raises(ValueError, match="finite"):
        metrics.rmse([1.0, 2.0], [1.0, np.nan])


def test_classification_metrics_reject_non_binary_labels_and_bad_probabilities():
    with pytest.raises(ValueError, match="binary"):
        metrics.auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        metrics.log_loss([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        metrics.accuracy([0, 1], [-0.1, 0.5])


def test_pointwise_metrics_reject_2d_input():
    with pytest.raises(ValueError, match="1-D"):
        metrics.mae([[1.0, 2.0]], [[1.0, 2.0]])


# --------------------------------------------------------------------------- ranking

# Three users, top-3 lists; -1 pads the last list (only two items were available).
RECOMMENDED = np.array([[1, 2, 3], [4, 5, 6], [7, 8, -1]])
RELEVANT = [{2, 9}, {10}, {7}]
# user 0: hit at rank 2 of 2 relevant; user 1: no hit; user 2: hit at rank 1 of 1.


def test_precision_at_k_counts_padding_as_a_miss():
    assert metrics.precision_at_k(RECOMMENDED, RELEVANT) == pytest.approx((1 / 3 + 0 + 1 / 3) / 3)


def test_recall_at_k():
    assert metrics.recall_at_k(RECOMMENDED, RELEVANT) == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_hit_rate_at_k():
    assert metrics.hit_rate_at_k(RECOMMENDED, RELEVANT) == pytest.approx(2 / 3)


def test_mrr_uses_the_first_hit_within_k():
    assert metrics.mrr(RECOMMENDED, RELEVANT) == pytest.approx((1 / 2 + 0 + 1) / 3)
    # With k=1 only user 2's hit (rank 1) is inside the window.
    assert metrics.mrr(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 3)


def test_ndcg_at_k_binary_log2_discount_with_ideal_over_min_rel_k():
    user0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2; 2 relevant
    user2 = 1.0  # hit at rank 1; 1 relevant
    assert metrics.ndcg_at_k(RECOMMENDED, RELEVANT) == pytest.approx((user0 + 0 + user2) / 3)


def test_ndcg_ideal_is_capped_at_k():
    # 5 relevant items, k=2, both slots hit: a perfect list even though recall is 2/5.
    recommended = np.array([[1, 2, 3]])
    relevant = [{1, 2, 7, 8, 9}]
    assert metrics.ndcg_at_k(recommended, relevant, k=2) == pytest.approx(1.0)
    assert metrics.recall_at_k(recommended, relevant, k=2) == pytest.approx(2 / 5)


def test_smaller_k_uses_the_first_k_columns():
    assert metrics.hit_rate_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 3)
    assert metrics.precision_at_k(RECOMMENDED, RELEVANT, k=2) == pytest.approx((1 / 2 + 0 + 1 / 2) / 3)


def test_users_with_empty_relevant_sets_are_excluded_from_the_mean():
    recommended = np.vstack([RECOMMENDED, [[1, 2, 3]]])
    relevant = RELEVANT + [set()]
    for func in (metrics.precision_at_k, metrics.recall_at_k, metrics.ndcg_at_k,
                 metrics.hit_rate_at_k, metrics.mrr):
        assert func(recommended, relevant) == pytest.approx(func(RECOMMENDED, RELEVANT))


def test_ranking_metric_is_nan_when_no_user_has_relevant_items():
    assert math.isnan(metrics.hit_rate_at_k(RECOMMENDED, [set(), [], ()]))


def test_an_item_repeated_in_a_list_counts_once():
    assert metrics.precision_at_k(np.array([[5, 5, 1]]), [{5}]) == pytest.approx(1 / 3)


def test_one_relevant_item_per_user_may_be_given_as_a_1d_array():
    next_items = np.array([3, 6, 100])
    as_sets = [{3}, {6}, {100}]
    for func in (metrics.hit_rate_at_k, metrics.ndcg_at_k, metrics.mrr):
        assert func(RECOMMENDED, next_items) == pytest.approx(func(RECOMMENDED, as_sets))
    assert metrics.hit_rate_at_k(RECOMMENDED, next_items) == pytest.approx(2 / 3)


def test_string_ids_and_none_padding_work():
    recommended = np.array([["a", "b"], ["c", None]], dtype=object)
    assert metrics.hit_rate_at_k(recommended, [{"b"}, {"x"}]) == pytest.approx(1 / 2)
    assert metrics.catalogue_coverage_at_k(recommended, 10) == pytest.approx(3 / 10)


def test_custom_padding_value():
    recommended = np.array([[1, 0], [2, 0]], dtype=np.uint64)
    assert metrics.precision_at_k(recommended, [{0, 1}, {2}], pad=0) == pytest.approx(1 / 2)


def test_ndcg_agrees_with_sklearn_ndcg_score():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    n_users, n_items, k = 40, 30, 10
    scores = rng.normal(size=(n_users, n_items))  # continuous: no ties in the ranking
    relevance = (rng.random((n_users, n_items)) < 0.2).astype(float)
    relevance[relevance.sum(axis=1) == 0, 0] = 1.0  # sklearn scores empty users 0; avoid them
    recommended = np.argsort(-scores, axis=1)[:, :k]
    relevant = [np.flatnonzero(row) for row in relevance]
    expected = sklearn_metrics.ndcg_score(relevance, scores, k=k)
    assert metrics.ndcg_at_k(recommended, relevant, k=k) == pytest.approx(expected)


def test_catalogue_coverage_counts_distinct_items_and_skips_padding():
    # distinct non-padding items: 1..8 -> 8 of a catalogue of 20
    assert metrics.catalogue_coverage_at_k(RECOMMENDED, 20) == pytest.approx(8 / 20)
    assert metrics.catalogue_coverage_at_k(RECOMMENDED, 20, k=1) == pytest.approx(3 / 20)


def test_catalogue_coverage_rejects_a_catalogue_smaller_than_what_was_recommended():
    with pytest.raises(ValueError, match="more than the catalogue size"):
        metrics.catalogue_coverage_at_k(RECOMMENDED, 5)


def test_ranking_metrics_reject_bad_input_with_what_was_expected():
    with pytest.raises(ValueError, match=r"one entry per user \(3\), got 2"):
        metrics.precision_at_k(RECOMMENDED, [{1}, {2}])
    with pytest.raises(ValueError, match="k >= 1, got 0"):
        metrics.recall_at_k(RECOMMENDED, RELEVANT, k=0)
    with pytest.raises(ValueError, match=r"k <= number of recommended columns \(3\), got 4"):
        metrics.ndcg_at_k(RECOMMENDED, RELEVANT, k=4)
    with pytest.raises(ValueError, match="2-D array"):
        metrics.mrr(np.array([1, 2, 3]), RELEVANT)
    with pytest.raises(ValueError, match="at least one user"):
        metrics.hit_rate_at_k(np.empty((0, 3), dtype=np.int64), [])
    with pytest.raises(TypeError, match="floats"):
        metrics.hit_rate_at_k(RECOMMENDED.astype(float), RELEVANT)


def test_metrics_module_does_not_import_pandas():
    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert "pandas" not in imported
    assert "numpy" in imported
