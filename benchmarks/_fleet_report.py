"""fleet.py's figures, targets, tables and JSON, from what its phases returned.

"Flat" targets are read as: start-up at M no more than 1.25 x start-up at 10,000 sets, and CPU
per renewal at the most expensive group size no more than 1.5 x at the cheapest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import _common as common
import _fleet_plan as plan_
import _fleet_store as store_

MIB = 2**20
TARGETS: tuple[tuple[str, Any, float], ...] = (
    ("token_requests_per_expiry", "<=", 1.01),
    ("renewals_done_twice", "==", 0.0),
    ("reuse_violations", "==", 0.0),
    ("sessions_lost", "==", 0.0),
    ("lateness_p99_s", "<=", 1.0),
    ("expired_served", "==", 0.0),
    ("load_stopped_late", "==", 0.0),
    ("rss_max_over_target", "<=", 1.0),
    ("startup_s_at_M", "<=", 1.0),
    ("startup_cpu_growth_0_to_M", "<=", 1.25),
    ("cpu_per_renewal_spread", "<=", 1.5),
    ("kill_renewed_after_deadline_max_s", "<=", 1.0),
    ("kill_sets_lost", "==", 0.0),
    ("kill_lost_outside_window", "==", 0.0),
)


def _size(sets: int) -> str:
    """``0``, ``10k``, ``100k``... for figure names; M when it is the run's size."""
    return "0" if sets == 0 else f"{sets // 1000}k" if sets % 1000 == 0 else str(sets)


def _delta(after: Mapping[str, Any], before: Mapping[str, Any], name: str) -> int:
    return int(after.get(name, 0)) - int(before.get(name, 0))


def _puts_between(record: plan_.Record, start: float, end: float) -> int:
    return sum(1 for put in record.puts if start <= put.wall < end)


def figures(out: Mapping[str, Any], workers: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat figures, detail tables) from the phases' output."""
    plan: plan_.Plan = out["plan"]
    records: dict[str, plan_.Record] = out["records"]
    journal = out["journal"]
    fleet = [r for name, r in records.items() if not name.startswith("startup")]
    chained = plan_.chains(plan, fleet)
    main = out["main"]
    window = plan_.renewals(
        plan, chained, journal, start=main["start"], end=main["end"], settle=2.0
    )
    # The second renewal cycle on: the cold start's backlog (if any) is behind the fleet.
    steady = plan_.renewals(
        plan, chained, journal, start=main["start"] + plan.interval, end=main["end"], settle=2.0
    )
    whole = plan_.renewals(plan, chained, journal, start=0.0, end=out["end"] - 5.0, settle=5.0)
    before, end = main["stats_before"], out["stats_end"]
    stored = out["stored"]
    late = window.lateness
    shares = [window.by_process[w.name] for w in main["workers"]]
    baseline, per_set = out["baseline_rss"], out["bytes_per_set"]

    def target_rss(n: int) -> float:
        return float(baseline + 1.5 * (plan.sets / n) * per_set)

    worker_rows = [
        {
            "worker": w.name,
            "renewals": window.by_process[w.name],
            "share": common.ratio(window.by_process[w.name], window.renewed),
            "rss_peak_mib": w.rss_max / MIB,
            "rss_target_mib": target_rss(workers) / MIB,
            "cpu_s": cpu,
        }
        for w, cpu in zip(main["workers"], main["cpu"], strict=True)
    ]
    scaling_rows = []
    for group in out["scaling"]:
        n = group["workers"]
        renewed = sum(
            _puts_between(records[w.name], group["start"], group["end"]) for w in group["group"]
        )
        scaling_rows.append(
            {
                "workers": n,
                "renewals": renewed,
                "renewals_per_s": renewed / (group["end"] - group["start"]),
                "cpu_per_renewal_ms": common.ratio(group["cpu"], renewed) * 1e3,
                "rss_peak_mib": max(w.rss_max for w in group["group"]) / MIB,
                "rss_target_mib": target_rss(n) / MIB,
                "backlog_at_end": group["backlog"],
            }
        )
    startup = out["startup"]
    # The first main worker starts as the start-up probes did: with no other worker running.
    by_name = {row["worker"]: row for row in startup}
    at = {0: by_name["startup-empty"], plan.sets: by_name["w0"]}
    if "startup-idle" in by_name:
        at[by_name["startup-idle"]["sets"]] = by_name["startup-idle"]
    renewed_main = max(1, window.renewed)
    cpu = [row["cpu_per_renewal_ms"] for row in scaling_rows if row["renewals"]]
    load = out["load_result"]
    flat: dict[str, Any] = {
        "sets": plan.sets,
        "workers": workers,
        "token_lifetime_s": plan.ttl,
        "planned_renewals_per_s": plan.rate,
        "main_window_s": main["end"] - main["start"],
        "due_events": window.due_events,
        "renewed": window.renewed,
        "served": window.served,
        "token_requests": window.token_requests,
        # Every token request for a due event of the window, over the due events served.
        "token_requests_per_expiry": common.ratio(window.token_requests, window.served),
        "renewals_done_twice": whole.done_twice,
        "premature_requests": whole.premature_requests,
        "reuse_violations": _delta(end, before, "reuse_violations"),
        "sessions_killed": _delta(end, before, "sessions_killed"),
        # Replays the sandbox's Keycloak allowed (only with --max-reuse >= 1).
        "refresh_reuses": _delta(end, before, "refresh_reuses"),
        "sessions_lost": plan.sets - stored["current"],
        "backlog_at_main_end": main["backlog"],
        # Due events not renewed by the end of the run (the last backlog, or sets lost).
        "due_never_renewed": whole.unrenewed,
        "lateness_p50_s": common.percentile(late, 50),
        "lateness_p99_s": common.percentile(late, 99),
        "lateness_max_s": max(late, default=float("nan")),
        "steady_due_events": steady.due_events,
        "steady_lateness_p50_s": common.percentile(steady.lateness, 50),
        "steady_lateness_p99_s": common.percentile(steady.lateness, 99),
        "workers_cpu_percent": sum(main["cpu"]) / (main["end"] - main["start"]) * 100,
        "workers_cpu_per_renewal_ms": sum(main["cpu"]) / renewed_main * 1e3,
        **{
            f"{name}_cpu_per_renewal_ms": seconds / renewed_main * 1e3
            for name, seconds in main["cpu_others"].items()
        },
        **{
            f"{name}_cpu_percent": seconds / (main["end"] - main["start"]) * 100
            for name, seconds in main["cpu_others"].items()
        },
        "load_average_main": main["load_average"],
        "worker_share_max_min": common.ratio(max(shares, default=0), min(shares, default=0)),
        "baseline_rss_mib": baseline / MIB,
        "bytes_per_set": per_set,
        "rss_max_over_target": max(
            (w.rss_max / target_rss(workers) for w in main["workers"]), default=float("nan")
        ),
        "store_bytes_per_set": out["store_bytes_per_set"],
        "seed_s": out["seed_s"],
        "seeded_late_s": out["seeded_late_s"],
        **{f"startup_s_at_{_size(n)}": row["startup_s"] for n, row in sorted(at.items())},
        **{f"startup_cpu_s_at_{_size(n)}": row["startup_cpu_s"] for n, row in sorted(at.items())},
        "startup_s_at_M": at[plan.sets]["startup_s"],
        "startup_cpu_growth_0_to_M": common.ratio(
            at[plan.sets]["startup_cpu_s"], at[0]["startup_cpu_s"]
        ),
        "cpu_per_renewal_spread": common.ratio(max(cpu, default=0.0), min(cpu, default=0.0)),
        "expired_served": load.get("expired_served"),
        "load_requests": load.get("requests"),
        "load_errors": sum(n for k, n in load.get("outcomes", {}).items() if k != "ok"),
        "load_wait_p99_ms": load.get("wait_p99_ms"),
        # The load had not made its requests by the window's end + 60 s: stopped (SIGTERM).
        "load_stopped_late": int(load.get("late", False)),
        "load_rss_mib": load.get("rss", 0) / MIB,
        "managers_close_hung": out["close_hung"],
    }
    flat |= kill_figures(out, records, journal, plan)
    details = {
        "workers": worker_rows,
        "scaling": scaling_rows,
        "startup": startup,
        "stored": stored,
        "load": load,
    }
    return flat, details


def kill_figures(
    out: Mapping[str, Any],
    records: Mapping[str, plan_.Record],
    journal: Sequence[Sequence[Any]],
    plan: plan_.Plan,
) -> dict[str, Any]:
    kill = out.get("kill")
    if kill is None:
        return {}
    victim = kill["victim"]
    others = [r for name, r in records.items() if name != victim.name]
    orphans = plan_.orphans(records[victim.name], others, journal, plan, killed_at=kill["at"])
    return {
        "kill_sets_held": orphans.claimed,
        "kill_renewed_by_others": orphans.renewed_by_others,
        "kill_renewed_after_deadline_max_s": max(orphans.after_deadline, default=float("nan")),
        "kill_sets_lost": orphans.not_renewed,
        "kill_rotated_at_death": orphans.rotated_at_death,
        "kill_lost_in_window": orphans.lost_in_window,
        "kill_lost_outside_window": orphans.not_renewed - orphans.lost_in_window,
    }


def publish(
    name: str, args: Any, info: Mapping[str, Any], out: Mapping[str, Any], started: float
) -> None:
    flat, details = figures(out, args.workers)
    checked = common.check(
        [common.Target(figure, op, bound) for figure, op, bound in TARGETS], flat
    )
    parameters = {
        "sets": args.sets,
        "workers": args.workers,
        "rate": args.rate,
        "main_window_s": round(args.seconds, 1),
        "load_requests": args.requests,
        "scaling": args.scaling,
        "scaling_window_s": args.scaling_seconds,
        "kill": args.kill,
        "keycloak_max_reuse": args.max_reuse,
        "store": store_.describe(out["store_url"]),
        "policy": "RefreshPolicy() (due 20 % of the lifetime before expiry)",
    }
    run = common.Run(name, args, dict(info), started)
    run.header(parameters)
    common.stdout.print(
        common.table("fleet figures", ["figure", "value"], [[k, v] for k, v in flat.items()])
    )
    for title, rows in (
        ("workers in the main window", details["workers"]),
        ("scaling: groups of workers, no load", details["scaling"]),
        ("start-up: spawn to first claim", details["startup"]),
    ):
        if rows:
            columns = list(rows[0])
            common.stdout.print(
                common.table(title, columns, [[row.get(c) for c in columns] for row in rows])
            )
    run.finish(parameters, flat | {"details": details}, checked)
