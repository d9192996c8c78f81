"""The cost estimate of mutual scoring and the default bound for large batches."""
from __future__ import annotations

import pytest

from zsad.errors import ZsadError
from zsad.scoring.mutual import (
    DEFAULT_MAX_GROUP,
    default_groups,
    estimate_mutual_cost,
    measure_gflops,
    plan_mutual,
    reference_sets,
)
from zsad.scoring.mutual.cost import compared_pairs


@pytest.mark.parametrize("n,max_refs,groups", [(7, None, 1), (10, 3, 1), (11, None, 2), (23, 4, 3), (9, 20, 1)])
def test_pairs_are_the_pairs_the_plan_compares(n, max_refs, groups):
    refs = reference_sets(n, max_refs=max_refs, groups=groups)
    assert compared_pairs(n, max_refs, groups) == sum(len(r) for r in refs)


def test_flops_follow_the_cost_model():
    # ViT-L-14-336 at 518: 37 x 37 tokens, 1024 dims, 4 layers, r = 1, 3, 5, 200 images
    flops = estimate_mutual_cost(200, 1369, 1024, 4, (1, 3, 5))
    assert flops == 4 * 3 * 200 * 199 * 2 * 1369**2 * 1024
    assert estimate_mutual_cost(200, 1369, 1024, 4, (1, 3, 5), groups=2) == pytest.approx(flops * 99 / 199)


def test_default_policy_keeps_published_batches_whole_and_splits_larger_ones():
    assert DEFAULT_MAX_GROUP == 200
    assert default_groups(200) == 1 and default_groups(201) == 2 and default_groups(1153) == 6
    assert default_groups(5000, max_group=None) == 1
    plan = plan_mutual(1153, 1369, 1024, 4)
    assert plan.groups == 6 and plan.bounded and "divide_num" in plan.describe()
    full = plan_mutual(1153, 1369, 1024, 4, groups=1)
    assert full.groups == 1 and not full.bounded and full.flops > 5 * plan.flops
    assert plan_mutual(30, 196, 64, 4).groups == 1
    assert plan.seconds == pytest.approx(plan.flops / (plan.gflops * 1e9))


def test_bad_plans_raise_and_throughput_is_positive():
    with pytest.raises(ZsadError):
        compared_pairs(5, groups=3)
    with pytest.raises(ZsadError):
        default_groups(10, max_group=1)
    assert measure_gflops(16, 8, repeats=1) > 0
