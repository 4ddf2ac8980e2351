"""Erlang C arithmetic, and the simulation through the real engine (small runs; big ones are in bench/)."""

from __future__ import annotations

import json
import math

import pytest

from cti_server.cli import main
from cti_server.routing.erlang import erlang_b, erlang_c
from cti_server.routing.simulation import SimulationParams, simulate


def erlang_c_by_factorials(agents: int, load: float) -> float:
    """The textbook closed form, fine for small N: an independent check of the recursion."""
    top = load**agents / math.factorial(agents) * agents / (agents - load)
    bottom = sum(load**k / math.factorial(k) for k in range(agents)) + top
    return top / bottom


@pytest.mark.parametrize(("agents", "load"), [(1, 0.5), (5, 3.2), (11, 10.0), (30, 25.0)])
def test_erlang_c_recursion_matches_closed_form(agents: int, load: float) -> None:
    figures = erlang_c(load / 60.0, 60.0, agents, threshold=20.0)
    assert figures.probability_of_waiting == pytest.approx(erlang_c_by_factorials(agents, load), rel=1e-9)
    assert figures.asa_s == pytest.approx(figures.probability_of_waiting * 60.0 / (agents - load))
    assert figures.occupancy == pytest.approx(load / agents)


def test_erlang_b_is_stable_for_thousands_of_agents() -> None:
    assert 0.0 < erlang_b(5000, 4900.0) < 0.05
    big = erlang_c(4900.0 / 100.0, 100.0, 5000, 10.0)
    assert big.stable and 0.0 < big.probability_of_waiting < 1.0 and 0.0 < big.service_level <= 1.0


def test_overload_is_reported_unstable() -> None:
    figures = erlang_c(1.0, 30.0, 20, 20.0)
    assert not figures.stable and math.isinf(figures.asa_s)


async def test_simulation_follows_erlang_c_on_a_light_load() -> None:
    result = await simulate(SimulationParams(arrival_rate=0.05, handle_time=120.0, agents=8, threshold=20.0,
                                             items=4000, seed=3))
    sim, erl = result.simulated, result.erlang_c
    assert sim.abandoned == 0 and sim.items_measured == 3600
    assert result.offers >= 4000
    assert sim.probability_of_waiting == pytest.approx(erl.probability_of_waiting, abs=0.08)
    assert sim.service_level == pytest.approx(erl.service_level, abs=0.06)
    assert sim.occupancy == pytest.approx(erl.occupancy, abs=0.05)


async def test_patience_makes_callers_abandon() -> None:
    result = await simulate(SimulationParams(arrival_rate=0.2, handle_time=120.0, agents=10, threshold=20.0,
                                             items=1000, patience=30.0))
    assert 0.1 < result.simulated.abandon_rate < 0.9
    assert result.simulated.answered + result.simulated.abandoned == result.simulated.items_measured


def test_simulate_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--arrival-rate", "0.05", "--handle-time", "60", "--agents", "5",
                 "--threshold", "10", "--items", "500", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out["simulated"]) >= {"probability_of_waiting", "asa_s", "service_level", "abandon_rate",
                                     "occupancy"}
    assert out["erlang_c"]["occupancy"] == pytest.approx(0.6)


def test_simulate_command_refuses_bad_and_unbounded_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--arrival-rate", "1", "--handle-time", "60", "--agents", "5",
                 "--threshold", "10"]) == 2
    assert "grows without bound" in capsys.readouterr().err
    assert main(["simulate", "--arrival-rate", "0", "--handle-time", "60", "--agents", "5",
                 "--threshold", "10"]) == 2
    assert "arrival_rate" in capsys.readouterr().err
