"""Simulated contact centre through the real routing engine, against Erlang C.

For each scenario (single-skill queue, Poisson arrivals, exponential handle times, no abandonment)
the simulation's average speed of answer and service level are compared with Erlang C; the target is
agreement within 5%. The 95% confidence half-widths come from batch means (20 batches after a 10%
warm-up), so a deviation can be judged against the simulation's own noise.

    .venv/bin/python bench/routing_simulation.py --items 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from cti_server.routing.simulation import SimulationParams, simulate

SCENARIOS = [
    # (arrival rate per s, handle time s, agents, threshold s)
    (16 / 180, 180.0, 20, 20.0),   # 16 Erlangs on 20 agents (80% occupancy)
    (45 / 180, 180.0, 50, 20.0),   # 45 Erlangs on 50 agents (90%)
    (3.5 / 300, 300.0, 5, 30.0),   # a small team: 3.5 Erlangs on 5 agents (70%)
]


async def main(items: int, seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for rate, handle, agents, threshold in SCENARIOS:
        started = time.perf_counter()
        result = await simulate(SimulationParams(arrival_rate=rate, handle_time=handle, agents=agents,
                                                 threshold=threshold, items=items, seed=seed))
        sim, erl = result.simulated, result.erlang_c
        rows.append({
            "load_erlangs": round(erl.load_erlangs, 2), "agents": agents, "threshold_s": threshold,
            "items": items, "seed": seed, "wall_s": round(time.perf_counter() - started, 1),
            "asa_sim_s": round(sim.asa_s, 2), "asa_ci95_s": round(sim.asa_ci95_s, 2),
            "asa_erlang_s": round(erl.asa_s, 2), "asa_error": round(result.relative_error("asa_s"), 4),
            "sl_sim": round(sim.service_level, 4), "sl_ci95": round(sim.service_level_ci95, 4),
            "sl_erlang": round(erl.service_level, 4),
            "sl_error": round(result.relative_error("service_level"), 4),
            "pw_sim": round(sim.probability_of_waiting, 4), "pw_erlang": round(erl.probability_of_waiting, 4),
            "occupancy_sim": round(sim.occupancy, 4), "occupancy_erlang": round(erl.occupancy, 4),
            "within_5_percent": result.relative_error("asa_s") <= 0.05
            and result.relative_error("service_level") <= 0.05,
        })
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.items, args.seed)), indent=2))  # noqa: T201
