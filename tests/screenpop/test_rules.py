"""Screen-pop rules: what one, several and no matches pop; the pop survives its JSON round trip."""

from __future__ import annotations

import json

import pytest

from cti_server.screenpop.rules import (
    ContactMatch,
    RulesError,
    ScreenPop,
    ScreenPopRules,
    build_pop,
    unfinished_pop,
)


def _match(n: int) -> ContactMatch:
    return ContactMatch(contact_id=f"c{n}", display_name=f"Contact {n}", matched_number="+14155550100")


def _pop(
    rules: ScreenPopRules, matches: list[ContactMatch], number: str | None = "+14155550100"
) -> ScreenPop:
    return build_pop(
        rules, call_center_id="cc", caller="4155550100", number=number, matches=matches, max_matches=3
    )


def test_default_rules_pop_record_list_and_new_contact_form() -> None:
    rules = ScreenPopRules()
    one = _pop(rules, [_match(1)])
    assert (one.outcome, one.action, one.contact_id) == ("single", "record", "c1")
    several = _pop(rules, [_match(1), _match(2)])
    assert (several.outcome, several.action, several.contact_id) == ("multiple", "list", None)
    assert [m.contact_id for m in several.matches] == ["c1", "c2"]
    none = _pop(rules, [])
    assert (none.outcome, none.action) == ("none", "new_contact")
    assert none.prefill == {"phone": "+14155550100"}


def test_more_matches_than_the_limit_are_cut_and_flagged() -> None:
    pop = _pop(ScreenPopRules(), [_match(n) for n in range(4)])
    assert len(pop.matches) == 3 and pop.more_matches


def test_rules_choose_other_actions() -> None:
    rules = ScreenPopRules.from_mapping(
        {"single_match": "search", "multiple_matches": "nothing", "no_match": "nothing"}
    )
    assert _pop(rules, [_match(1)]).action == "search"
    assert _pop(rules, [_match(1)]).prefill == {"phone": "+14155550100"}
    assert _pop(rules, [_match(1), _match(2)]).action == "nothing"
    assert _pop(rules, []).prefill == {}


def test_unreadable_caller_is_its_own_outcome() -> None:
    pop = _pop(ScreenPopRules(), [], number=None)
    assert (pop.outcome, pop.action, pop.prefill) == ("invalid_number", "new_contact", {})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"single_match": "explode"}, "single_match"),
        ({"no_match": 3}, "no_match"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rules_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(RulesError) as info:
        ScreenPopRules.from_mapping(data)
    assert info.value.field == field


def test_empty_rules_are_the_defaults() -> None:
    assert ScreenPopRules.from_mapping(None) == ScreenPopRules.from_mapping({}) == ScreenPopRules()


def test_pop_round_trips_through_json() -> None:
    pops = [
        _pop(ScreenPopRules(), [_match(1), _match(2)]),
        unfinished_pop(call_center_id="cc", caller="x", number="+14155550100", late=True, call_id="abc"),
    ]
    for pop in pops:
        again = ScreenPop.from_dict(json.loads(json.dumps(pop.to_dict())))
        assert again == pop
    late = pops[1].to_dict()
    assert late["late"] is True and late["outcome"] == "late" and late["action"] == "search"


def test_pop_with_unknown_outcome_is_refused() -> None:
    with pytest.raises(RulesError):
        ScreenPop.from_dict({"outcome": "maybe"})
