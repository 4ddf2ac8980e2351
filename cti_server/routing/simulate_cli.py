"""``cti-server simulate``: size a team by running the real routing engine on a simulated clock.

Prints the probability of waiting, average speed of answer, service level, abandon rate and agent
occupancy the simulation measured, beside the Erlang C values for the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys

from cti_server.routing.simulation import SimulationParams, SimulationResult, simulate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser(
        "simulate", help="simulate a queue (Poisson arrivals, exponential handle times) beside Erlang C",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arrival-rate", type=float, required=True, metavar="PER_S", help="arrivals per second")
    p.add_argument("--handle-time", type=float, required=True, metavar="S", help="mean handle time, seconds")
    p.add_argument("--agents", type=int, required=True, metavar="N", help="agents logged in")
    p.add_argument("--threshold", type=float, required=True, metavar="S",
                   help="service level threshold: answered within S seconds")
    p.add_argument("--items", type=int, default=100_000, metavar="N", help="arrivals to simulate (100000)")
    p.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (1)")
    p.add_argument("--patience", type=float, default=None, metavar="S",
                   help="mean caller patience in seconds: callers abandon after an exponential wait")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    params = SimulationParams(arrival_rate=args.arrival_rate, handle_time=args.handle_time,
                              agents=args.agents, threshold=args.threshold, items=args.items,
                              seed=args.seed, patience=args.patience)
    try:
        params.validate()
    except ValueError as exc:
        sys.stderr.write(f"cti-server simulate: {exc}\n")
        return 2
    if params.arrival_rate * params.handle_time >= params.agents and params.patience is None:
        sys.stderr.write("cti-server simulate: load (arrival rate x handle time) is not below the agents: "
                         "the queue grows without bound; add agents or give --patience\n")
        return 2
    result = asyncio.run(simulate(params))
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n" if args.json else format_table(result))
    return 0


def format_table(result: SimulationResult) -> str:
    """The human-readable report: simulated (with 95% half-widths) beside Erlang C."""
    sim, erl, p = result.simulated, result.erlang_c, result.params

    def pct(x: float) -> str:
        return f"{100 * x:.2f} %"

    def secs(x: float) -> str:
        return "inf" if math.isinf(x) else f"{x:.2f} s"

    rows = [
        ("probability of waiting", pct(sim.probability_of_waiting), pct(erl.probability_of_waiting)),
        ("average speed of answer", f"{secs(sim.asa_s)} +/- {sim.asa_ci95_s:.2f}", secs(erl.asa_s)),
        (f"service level ({p.threshold:g} s)",
         f"{pct(sim.service_level)} +/- {100 * sim.service_level_ci95:.2f}", pct(erl.service_level)),
        ("abandon rate", pct(sim.abandon_rate), "n/a (no abandonment)"),
        ("occupancy", pct(sim.occupancy), pct(erl.occupancy)),
    ]
    lines = [
        f"load {erl.load_erlangs:.2f} Erlangs on {p.agents} agents; {p.items} arrivals (first 10% warm-up), "
        f"seed {p.seed}" + (f", mean patience {p.patience:g} s" if p.patience else ""),
        f"{'':26}{'simulated (95% CI)':>28}  {'Erlang C':>22}",
    ]
    lines += [f"{name:26}{value:>28}  {ref:>22}" for name, value, ref in rows]
    return "\n".join(lines) + "\n"
