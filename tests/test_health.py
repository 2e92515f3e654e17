"""Health of a service from its metrics, and of an instance from its own counters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from redline.scaling.health import HealthPolicy, assess, assess_instance


def test_a_service_is_judged_by_its_share_of_timeouts_and_errors() -> None:
    assert assess({"done": {"count": 100, "above": 10}}).ok  # 10 % is not above 10 %
    slow = assess({"done": {"count": 100, "above": 11}})
    assert not slow.ok and slow.reason == "timeouts 11/100 = 11% > 10%"
    failing = assess({"forwarded": {"count": 50}, "errors": {"count": 6}})
    assert not failing.ok and failing.reason.startswith("errors 6/50")
    assert assess({"done": {"count": 5, "above": 5}}).ok  # too few calls to judge


def test_an_instance_is_judged_by_its_counters_since_its_start() -> None:
    strict = HealthPolicy.model_validate({"threshold": 0.01, "minCount": 100})
    fields = {"calls": "200", "errors": "3", "timeouts": "0", "pid": "7"}
    assert assess_instance(fields).ok
    sick = assess_instance(fields, strict)
    assert not sick.ok and sick.reason == "errors 3/200 = 2% > 1%"
    assert assess_instance({"pid": "7"}, strict).ok  # a fresh instance has nothing against it


def test_a_policy_refuses_a_threshold_outside_0_to_1() -> None:
    with pytest.raises(ValidationError, match="threshold"):
        HealthPolicy.model_validate({"threshold": 1.5})
