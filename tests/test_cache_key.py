"""The facts cache's key covers every option that changes facts; what it leaves out is declared, with why."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from grader.cache import LIMITS_NOT_FACTS, NOT_FACTS, FactsCache
from grader.intake import Submission
from grader.settings import Options, RunLimits

SUBMISSION = Submission(student="1001", path=Path("1001.ipynb"), digest="0" * 64)
# a value other than the default for each field (limits are gone through one by one below)
OTHER = {"mode": "static", "data": "/elsewhere/mnist", "variable": "net", "dry_run": True, "sandbox": False,
         "gpu": True, "gpu_index": 1, "keep": Path("/kept"), "environment": Path("/envs/other"),
         "compat": ("colab",), "variable_named": True, "unseen": True, "warm": True}


def _key(options: Options) -> str:
    return FactsCache.key(SUBMISSION, options)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Options) if f.name != "limits"])
def test_every_option_is_in_the_key_or_declared_as_not_changing_facts(name):
    assert name in OTHER, f"Options.{name} is new: give it a value in OTHER, and put it in NOT_FACTS if no fact changes"
    changed = _key(Options().with_(**{name: OTHER[name]})) != _key(Options())
    assert changed != (name in NOT_FACTS), (
        f"Options.{name} " + ("changes the key but is declared as not changing facts" if changed else
                              "changes facts but not the cache key: put it in FactsCache.settings"))


@pytest.mark.parametrize("name", list(RunLimits.model_fields))
def test_every_limit_is_in_the_key_or_declared_as_not_changing_facts(name):
    default = RunLimits.model_fields[name].default
    limits = RunLimits().model_copy(update={name: (default or 600) * 2})
    changed = _key(Options(limits=limits)) != _key(Options())
    assert changed != (name in LIMITS_NOT_FACTS), f"RunLimits.{name}"


def test_each_field_left_out_of_the_key_says_why():
    options, limits = {f.name for f in dataclasses.fields(Options)}, set(RunLimits.model_fields)
    assert set(NOT_FACTS) <= options and set(LIMITS_NOT_FACTS) <= limits
    assert all(len(why) > 20 for why in [*NOT_FACTS.values(), *LIMITS_NOT_FACTS.values()])


def test_facts_of_a_run_that_graded_another_model_are_not_reused():
    """The rubric's `model:` (variable_named): the named variable, or the module training updated, is graded."""
    named, found = Options(variable_named=True), Options(variable_named=False)
    assert _key(named) != _key(found)
    assert FactsCache.settings(named)["variable_named"] is True
