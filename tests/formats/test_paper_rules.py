"""The authors' r-CP rank rule (tnn.formats.paper_rules) and its whole-model rate."""

import math

import pytest

from tnn.experiments.paper_rank_rule import paper_rule_rates
from tnn.formats import KernelGeometry
from tnn.formats.paper_rules import paper_rcp_rank, paper_rcp_rate
from tnn.models import get_model


def test_rank_follows_the_formula_by_hand():
    geom = KernelGeometry.create(64, 32, (3, 3), m=2)  # T = 8 x 8, S = 4 x 8
    assert (geom.out_folds, geom.in_folds) == ((8, 8), (4, 8))
    expected = math.ceil(0.05 * 9 * 64 * 32 / (6 + 12 + 16))
    assert paper_rcp_rank(geom, 0.05) == expected == 28


def test_true_rate_counts_pair_factors_and_the_spatial_factor():
    geom = KernelGeometry.create(64, 64, (3, 3), m=2)
    rank = paper_rcp_rank(geom, 0.05)
    # one (R, 8, 8) factor per pair mode and one (R, 3, 3) spatial factor
    assert paper_rcp_rate(geom, 0.05) == pytest.approx(rank * (64 + 64 + 9) / (64 * 64 * 9))
    assert paper_rcp_rate(geom, 0.05) > 0.05 * 3.5


def test_one_by_one_kernels_and_linear_layers_have_no_spatial_term():
    conv = KernelGeometry.create(64, 64, (1, 1), m=2)
    linear = KernelGeometry.create(64, 64, (), m=2)
    assert paper_rcp_rank(conv, 0.1) == paper_rcp_rank(linear, 0.1) == math.ceil(0.1 * 64 * 64 / 32)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="groups=1"):
        paper_rcp_rank(KernelGeometry.create(8, 8, (3, 3), groups=2, m=2), 0.1)
    with pytest.raises(ValueError, match="rate"):
        paper_rcp_rank(KernelGeometry.create(8, 8, (3, 3), m=2), 1.5)


def test_resnet32_rates_the_issue_quotes():
    """Nominal 0.05 / 0.1 with two folds keep about 0.17 / 0.34 of ResNet-32's compressed weights."""
    model = get_model("resnet32")
    at_05 = paper_rule_rates(model, 0.05, m=2, exclude=["conv1", "linear"])
    at_10 = paper_rule_rates(model, 0.1, m=2, exclude=["conv1", "linear"])
    assert len(at_05.ranks) == 30
    assert at_05.paper_rate == pytest.approx(0.172, abs=0.001)
    assert at_10.paper_rate == pytest.approx(0.341, abs=0.001)
    assert at_05.tnn_rate <= 0.05 and at_10.tnn_rate <= 0.1
